// The counter page of terminal-agent: readers, card events (WebSocket /v1/events), the basic information of the
// card in the selected reader (GET /v1/readers/{index}/basic) and the holder's photo (…/photo). Same origin as the
// agent; no external resources. The holder's data is cleared when the card leaves the reader and after the idle
// timeout (<meta name="sscard-idle-seconds">, the agent's `page_idle_secs`); the photo is never cached (the agent
// answers `Cache-Control: no-store`, and the page drops its object URL when it clears).
"use strict";

const SEX = { "0": "未知 unknown", "1": "男 male", "2": "女 female", "9": "未说明 unspecified" };
// GB/T 3304 codes of the ethnic groups
const ETHNICITY = ("汉族 蒙古族 回族 藏族 维吾尔族 苗族 彝族 壮族 布依族 朝鲜族 满族 侗族 瑶族 白族 土家族 哈尼族 哈萨克族 傣族 黎族 " +
  "傈僳族 佤族 畲族 高山族 拉祜族 水族 东乡族 纳西族 景颇族 柯尔克孜族 土族 达斡尔族 仫佬族 羌族 布朗族 撒拉族 毛南族 仡佬族 锡伯族 " +
  "阿昌族 普米族 塔吉克族 怒族 乌孜别克族 俄罗斯族 鄂温克族 德昂族 保安族 裕固族 京族 塔塔尔族 独龙族 鄂伦春族 赫哲族 门巴族 珞巴族 基诺族")
  .split(" ");

const state = { readers: [], selected: 0, reading: false, shown: 0, photoUrl: null, idleTimer: null };
const $ = (id) => document.getElementById(id);
const IDLE_SECONDS = (() => {
  const meta = document.querySelector('meta[name="sscard-idle-seconds"]');
  const n = meta ? parseFloat(meta.content) : NaN;
  return n > 0 ? n : 120;
})();

// What a clerk is told, by the agent's error kind; the national code follows for the help desk.
const CLERK_WORDS = {
  no_card: "未检测到卡片，请插卡 · No card in the reader: insert the card",
  card_removed: "卡片已拔出 · The card was taken out: insert it again",
  card_error: "卡片无法读取，请重新插卡 · The card cannot be read: take it out and insert it again",
  card_refused: "卡片无法读取，请重新插卡 · The card cannot be read: take it out and insert it again",
  card_timeout: "卡片无响应，请重新插卡 · The card does not answer: take it out and insert it again",
  reader_error: "读卡器故障，请重新插卡 · The reader failed: insert the card again",
  no_reader: "读卡器未连接 · The reader is not connected",
  reader_unavailable: "读卡器未连接 · The reader is not connected",
  busy: "读卡器忙，请稍候再试 · The reader is busy: try again in a moment",
  key_service_unreachable: "密钥服务无法连接，请联系技术支持 · The key service cannot be reached: call the help desk",
  key_service_refused: "密钥服务拒绝本终端，请联系技术支持 · The key service refused this counter: call the help desk",
  key_not_held: "此卡需要密钥服务，本终端未配置 · This card needs the key service, which this counter does not use",
};

function clerkError(body, status) {
  const words = (body && CLERK_WORDS[body.error]) || "读卡失败 · The card could not be read";
  const code = body && body.code != null ? body.code : `HTTP ${status}`;
  return `${words}（代码 code ${code}）`;
}

function fmtDate(d) {
  return d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d;
}

function show(field, value) {
  const el = document.querySelector(`#basic [data-field="${field}"]`);
  if (el) el.textContent = value == null || value === "" ? "—" : value;
}

function setPhotoState(kind, text) {
  const st = $("photo-state");
  st.dataset.state = kind;
  st.textContent = text;
  st.hidden = kind === "shown";
}

function clearPhoto() {
  const img = $("photo");
  img.hidden = true;
  img.removeAttribute("src");
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = null;
  setPhotoState("empty", "—");
}

// Clears everything of the holder: the fields, the photo, the national string; `why` is said in the error line.
function clearCard(why) {
  state.shown += 1; // a read or photo still on its way belongs to the card that is gone
  if (state.idleTimer) clearTimeout(state.idleTimer);
  state.idleTimer = null;
  document.querySelectorAll("#basic dd").forEach((dd) => (dd.textContent = "—"));
  $("national").textContent = "";
  clearPhoto();
  $("error").textContent = why || "";
  document.body.dataset.holder = "none";
}

// The holder's data stays while the clerk works; after IDLE_SECONDS without a key or a click it is cleared.
function armIdle() {
  if (state.idleTimer) clearTimeout(state.idleTimer);
  state.idleTimer = setTimeout(() => {
    clearCard(`已清除：${IDLE_SECONDS} 秒无操作 · Cleared after ${IDLE_SECONDS} s without activity`);
    logEvent("超时清除 cleared (idle)");
  }, IDLE_SECONDS * 1000);
}

function activity() {
  if (document.body.dataset.holder === "shown") armIdle();
}

async function loadPhoto(index, shown) {
  setPhotoState("loading", "读取照片… reading photo");
  try {
    const resp = await fetch(`/v1/readers/${index}/photo`, { cache: "no-store" });
    if (shown !== state.shown) return;
    if (resp.ok) {
      const blob = await resp.blob();
      if (shown !== state.shown) return;
      state.photoUrl = URL.createObjectURL(blob);
      const img = $("photo");
      img.src = state.photoUrl;
      img.hidden = false;
      setPhotoState("shown", "");
      return;
    }
    const body = await resp.json().catch(() => null);
    if (shown !== state.shown) return;
    if (body && body.error === "no_photo") setPhotoState("none", "此卡无照片 · No photo on this card");
    else setPhotoState("error", `照片无法读取 · Photo not readable（代码 code ${body && body.code != null ? body.code : resp.status}）`);
  } catch (e) {
    if (shown === state.shown) setPhotoState("error", `照片无法读取 · Photo not readable: ${e.message}`);
  }
}

function logEvent(text) {
  const li = document.createElement("li");
  const t = document.createElement("time");
  t.textContent = new Date().toLocaleTimeString("zh-CN", { hour12: false });
  li.append(t, text);
  $("events").prepend(li);
}

function renderReaders() {
  const ul = $("readers");
  ul.replaceChildren();
  if (state.readers.length === 0) {
    const li = document.createElement("li");
    li.textContent = "无读卡器 no readers";
    ul.append(li);
  }
  state.readers.forEach((r, i) => {
    const li = document.createElement("li");
    li.dataset.reader = r.name;
    if (i === state.selected) li.classList.add("selected");
    const name = document.createElement("span");
    name.textContent = r.name;
    const st = document.createElement("span");
    st.className = "state" + (r.card_present ? " present" : "");
    st.textContent = r.card_present ? "有卡 card present" : "无卡 no card";
    li.append(name, st);
    li.addEventListener("click", () => { state.selected = i; renderReaders(); });
    ul.append(li);
  });
  const r = state.readers[state.selected];
  $("read").disabled = !r || !r.card_present || state.reading;
}

async function loadReaders() {
  const resp = await fetch("/v1/readers");
  if (!resp.ok) throw new Error(`readers: HTTP ${resp.status}`);
  const body = await resp.json();
  state.readers = body.readers;
  if (state.selected >= state.readers.length) state.selected = 0;
  renderReaders();
}

async function readCard() {
  const r = state.readers[state.selected];
  if (!r || state.reading) return;
  state.reading = true;
  renderReaders();
  clearCard("读卡中 reading…");
  const shown = state.shown;
  try {
    const resp = await fetch(`/v1/readers/${r.index}/basic`, { cache: "no-store" });
    const body = await resp.json().catch(() => null);
    if (shown !== state.shown) return;
    if (!resp.ok || !body) {
      clearCard(clerkError(body, resp.status));
      return;
    }
    const c = body.card;
    show("name", c.name_ext && c.name_ext !== c.name ? `${c.name}（${c.name_ext}）` : c.name);
    show("ssn", c.ssn);
    show("sex", SEX[c.sex] || c.sex);
    const eth = c.ethnicity ? parseInt(c.ethnicity, 10) : NaN;
    show("ethnicity", ETHNICITY[eth - 1] ? `${ETHNICITY[eth - 1]} (${c.ethnicity})` : c.ethnicity);
    show("birth_date", fmtDate(c.birth_date));
    show("birthplace", c.birthplace);
    show("card_number", c.card_number);
    show("card_id", c.card_id);
    show("region", c.region);
    show("issue_date", fmtDate(c.issue_date));
    show("expiry_date", fmtDate(c.expiry_date));
    show("spec_version", `${c.spec_version} (第${c.generation}代 generation ${c.generation})`);
    $("national").textContent = body.national;
    $("error").textContent = c.withheld_for_lack_of
      ? `部分信息需要密钥服务 · Some fields need the key service (${c.withheld_for_lack_of})（代码 code ${body.code}）` : "";
    document.body.dataset.holder = "shown";
    armIdle();
    logEvent(`读卡成功 read ${c.card_number || c.card_id}`);
    await loadPhoto(r.index, shown);
  } catch (e) {
    if (shown === state.shown) clearCard(`读卡失败 · The card could not be read: ${e.message}`);
  } finally {
    state.reading = false;
    renderReaders();
  }
}

function connectEvents() {
  const ws = new WebSocket(`ws://${location.host}/v1/events`);
  ws.addEventListener("open", () => {
    $("agent").textContent = "已连接 connected";
    $("agent").dataset.state = "connected";
  });
  ws.addEventListener("message", async (msg) => {
    const e = JSON.parse(msg.data);
    switch (e.type) {
      case "snapshot":
        await loadReaders();
        break;
      case "card_inserted":
        logEvent(`插卡 card inserted · ${e.reader}`);
        await loadReaders();
        if (state.readers[state.selected] && state.readers[state.selected].name === e.reader) await readCard();
        break;
      case "card_removed":
        logEvent(`拔卡 card removed · ${e.reader}`);
        if (state.readers[state.selected] && state.readers[state.selected].name === e.reader) {
          clearCard("卡片已拔出 · Card removed");
        }
        await loadReaders();
        break;
      case "reader_added":
        logEvent(`读卡器接入 reader added · ${e.reader}`);
        await loadReaders();
        break;
      case "reader_removed":
        logEvent(`读卡器移除 reader removed · ${e.reader}`);
        await loadReaders();
        break;
    }
  });
  ws.addEventListener("close", () => {
    $("agent").textContent = "未连接 disconnected — 重连中 reconnecting";
    $("agent").dataset.state = "disconnected";
    setTimeout(connectEvents, 2000);
  });
}

function setLargeText(on) {
  document.documentElement.classList.toggle("large", on);
  $("large-text").setAttribute("aria-pressed", String(on));
  try { localStorage.setItem("sscard.largeText", on ? "1" : "0"); } catch (_) { /* storage off: this page only */ }
}

$("read").addEventListener("click", readCard);
$("large-text").addEventListener("click", () => setLargeText(!document.documentElement.classList.contains("large")));
try { setLargeText(localStorage.getItem("sscard.largeText") === "1"); } catch (_) { setLargeText(false); }
document.addEventListener("keydown", (e) => {
  activity();
  // Enter reads the card in the selected reader (not when Enter is pressing a focused button: its click does)
  if (e.key === "Enter" && !(e.target instanceof HTMLButtonElement)) {
    e.preventDefault();
    readCard();
  }
});
document.addEventListener("pointerdown", activity);
document.addEventListener("wheel", activity, { passive: true });
clearCard();
loadReaders().then(() => {
  const r = state.readers[state.selected];
  if (r && r.card_present) readCard();
}).catch((e) => { $("error").textContent = e.message; });
connectEvents();

// The counter page of terminal-agent: readers, card events (WebSocket /v1/events) and the basic information of the
// card in the selected reader (GET /v1/readers/{index}/basic). Same origin as the agent; no external resources.
"use strict";

const SEX = { "0": "未知 unknown", "1": "男 male", "2": "女 female", "9": "未说明 unspecified" };
// GB/T 3304 codes of the ethnic groups
const ETHNICITY = ("汉族 蒙古族 回族 藏族 维吾尔族 苗族 彝族 壮族 布依族 朝鲜族 满族 侗族 瑶族 白族 土家族 哈尼族 哈萨克族 傣族 黎族 " +
  "傈僳族 佤族 畲族 高山族 拉祜族 水族 东乡族 纳西族 景颇族 柯尔克孜族 土族 达斡尔族 仫佬族 羌族 布朗族 撒拉族 毛南族 仡佬族 锡伯族 " +
  "阿昌族 普米族 塔吉克族 怒族 乌孜别克族 俄罗斯族 鄂温克族 德昂族 保安族 裕固族 京族 塔塔尔族 独龙族 鄂伦春族 赫哲族 门巴族 珞巴族 基诺族")
  .split(" ");

const state = { readers: [], selected: 0, reading: false };
const $ = (id) => document.getElementById(id);

function fmtDate(d) {
  return d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d;
}

function show(field, value) {
  const el = document.querySelector(`#basic [data-field="${field}"]`);
  if (el) el.textContent = value == null || value === "" ? "—" : value;
}

function clearCard() {
  document.querySelectorAll("#basic dd").forEach((dd) => (dd.textContent = "—"));
  $("national").textContent = "";
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
  $("error").textContent = "读卡中 reading…";
  try {
    const resp = await fetch(`/v1/readers/${r.index}/basic`);
    const body = await resp.json();
    if (!resp.ok) {
      clearCard();
      $("error").textContent = `读卡失败 read failed (${body.code}): ${body.message}`;
      return;
    }
    const c = body.card;
    show("name", c.name_ext ? `${c.name}（${c.name_ext}）` : c.name);
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
      ? `部分信息需要密钥 some fields need the key ${c.withheld_for_lack_of}` : "";
    logEvent(`读卡成功 read ${c.card_number || c.card_id}`);
  } catch (e) {
    $("error").textContent = `读卡失败 read failed: ${e.message}`;
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
        if (state.readers[state.selected] && state.readers[state.selected].name === e.reader) clearCard();
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

$("read").addEventListener("click", readCard);
loadReaders().then(() => {
  const r = state.readers[state.selected];
  if (r && r.card_present) readCard();
}).catch((e) => { $("error").textContent = e.message; });
connectEvents();

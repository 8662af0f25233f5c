#!/usr/bin/env python3
"""The baseline of `cargo xtask bench`'s key sets per second: Python `cryptography` doing the diversification of
CARD-PROFILE §5.2 from region keys held in memory, as a script of a card bureau would.

    Div(K, D) = 3DES_K(D) ‖ 3DES_K(D ⊕ FF…FF), odd parity      (3DES, 16-byte keys)
    Div(K, D) = SM4_K(D ‖ (D ⊕ FF…FF))                           (SM4)

The issuer keys are the fixture cards' published test keys (fixtures/cards/test-keys.toml); the region level
(factor `371700` ‖ "sx") is derived once, outside the timing, as key-mgmt's "in memory" figure has it. Per card,
every key of the set is diversified with the card factor. The fastest honest Python: one ECB encryptor per region
key made once and reused, both 3DES halves in one `update`.

Before timing, the script checks its Div against the project's known answer (test-vectors/diversification.json)
and the SM4 block cipher against test-vectors/sm4.json; it writes one card's full key set (`check`) so that
`sscard-bench report` compares it with card-core's own derivation — the same computation, key for key.

usage: python_keysets.py REPO_ROOT OUT.json [SECONDS]
"""

import json
import sys
import time
import tomllib

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

REGION = "371700"
CHECK_FACTOR = bytes.fromhex("0102030405060708")


def parity(key: bytes) -> bytes:
    return bytes((b & 0xFE) | ((bin(b >> 1).count("1") + 1) & 1) for b in key)


def encryptor(alg: str, key: bytes):
    # two-key 3DES (K1 K2 K1) as the 24-byte key cryptography asks for
    algo = TripleDES(key + key[:8]) if alg == "tdes" else algorithms.SM4(key)
    return Cipher(algo, modes.ECB()).encryptor()


def div(enc, alg: str, factor: bytes) -> bytes:
    inverse = bytes(b ^ 0xFF for b in factor)
    out = enc.update(factor + inverse)
    return parity(out) if alg == "tdes" else out


def check_vectors(root: str) -> None:
    with open(f"{root}/test-vectors/diversification.json", encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]
    for v in vectors:
        if v["card_algorithm"] != "3DES" or len(v["factors"]) != 1:
            continue
        got = div(encryptor("tdes", bytes.fromhex(v["key"])), "tdes", bytes.fromhex(v["factors"][0]))
        if got.hex().upper() != v["expected"].upper():
            sys.exit(f"python_keysets: 3DES Div gives {got.hex()} for {v['source']}, expected {v['expected']}")
    with open(f"{root}/test-vectors/sm4.json", encoding="utf-8") as f:
        sm4 = json.load(f)["vectors"][0]
    key, plain, cipher = (bytes.fromhex(sm4[k]) for k in ("key", "input", "expected"))
    if encryptor("sm4", key).update(plain) != cipher:
        sys.exit("python_keysets: SM4 does not give the vector of test-vectors/sm4.json")


def main() -> None:
    root, out = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    check_vectors(root)
    with open(f"{root}/fixtures/cards/test-keys.toml", "rb") as f:
        issuer = tomllib.load(f)["issuer"]
    region_factor = (REGION + "sx").encode("ascii")
    result = {"python": sys.version.split()[0], "region": REGION, "check_factor": CHECK_FACTOR.hex().upper()}
    for alg, table in (("tdes", issuer["3des"]), ("sm4", issuer["sm4"])):
        names = sorted(table)
        region = [div(encryptor(alg, bytes.fromhex(table[n])), alg, region_factor) for n in names]
        encs = [encryptor(alg, k) for k in region]
        check = {n: div(e, alg, CHECK_FACTOR).hex().upper() for n, e in zip(names, encs)}
        sets, factor, started = 0, 0, time.perf_counter()
        while True:
            for _ in range(200):
                cf = factor.to_bytes(8, "big")
                keys = [div(e, alg, cf) for e in encs]
                factor += 1
            sets += 200
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                break
        assert len(keys) == len(names)
        result[alg] = {"per_s": sets / elapsed, "keys_per_set": len(names), "sets": sets, "check": check}
        print(f"python {alg}: {sets / elapsed:,.0f} key sets/s ({len(names)} keys a set)", file=sys.stderr)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

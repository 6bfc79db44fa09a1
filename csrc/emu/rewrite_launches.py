"""Rewrites the CUDA launches of a .cu file for the CPU emulation (what hipify does, for launches only).

    kernel<T, 4><<<grid, block, shmem, stream>>>(a, b);
becomes
    CUDA_EMU_LAUNCH((kernel<T, 4>), grid, block, shmem, stream, a, b);

Everything else is copied unchanged (a #line directive keeps compiler messages pointing at the .cu
file). Usage: rewrite_launches.py IN.cu OUT.cpp. Fails loudly on a launch it cannot parse, so a new
launch form is never silently left out of the emulation.
"""
from __future__ import annotations

import re
import sys

_IDENT_CHARS = re.compile(r"[A-Za-z0-9_:]")


def _kernel_start(src: str, end: int) -> int:
    """Start of the kernel expression that ends at `end` (an identifier with an optional
    balanced <...> template list), walking backwards."""
    k = end
    depth = 0
    while k > 0:
        c = src[k - 1]
        if c == ">":
            depth += 1
        elif c == "<":
            depth -= 1
        elif depth == 0 and not _IDENT_CHARS.match(c):
            break
        k -= 1
    return k


def _split_top_level(text: str) -> list[str]:
    """Splits on commas outside (), [] and {} (a launch configuration has no template list
    with a comma in it; counting < and > would trip over shifts and comparisons)."""
    parts, depth, cur = [], 0, []
    for c in text:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    tail = "".join(cur).strip()
    if tail:
        parts.append(tail)
    return parts


def _matching_paren(src: str, open_at: int) -> int:
    depth = 0
    for q in range(open_at, len(src)):
        if src[q] == "(":
            depth += 1
        elif src[q] == ")":
            depth -= 1
            if depth == 0:
                return q
    raise ValueError("unbalanced parentheses after a launch")


def rewrite(src: str, name: str) -> tuple[str, int]:
    out, pos, n = [], 0, 0
    while True:
        j = src.find("<<<", pos)
        if j < 0:
            out.append(src[pos:])
            return "".join(out), n
        end_name = j
        while src[end_name - 1].isspace():
            end_name -= 1
        start = _kernel_start(src, end_name)
        kernel = src[start:end_name].strip()
        e = src.find(">>>", j)
        p = src.find("(", e)
        if not kernel or e < 0 or p < 0 or src[e + 3 : p].strip():
            line = src.count("\n", 0, j) + 1
            raise ValueError(f"{name}:{line}: cannot parse this launch")
        q = _matching_paren(src, p)
        config = _split_top_level(src[j + 3 : e])
        if not 2 <= len(config) <= 4:
            line = src.count("\n", 0, j) + 1
            raise ValueError(f"{name}:{line}: launch configuration needs 2 to 4 parts, got {len(config)}")
        config += ["0", "nullptr"][len(config) - 2 :]
        args = src[p + 1 : q].strip()
        out.append(src[pos:start])
        launch = f"CUDA_EMU_LAUNCH(({kernel}), {', '.join(config)}{', ' + args if args else ''})"
        # keep the .cu file's line numbers for what follows
        out.append(launch + "\n" * (src.count("\n", start, q + 1) - launch.count("\n")))
        pos = q + 1
        n += 1


def main() -> int:
    src_path, out_path = sys.argv[1], sys.argv[2]
    with open(src_path) as f:
        src = f.read()
    try:
        text, n = rewrite(src, src_path)
    except ValueError as err:
        print(f"rewrite_launches: {err}", file=sys.stderr)
        return 1
    with open(out_path, "w") as f:
        f.write(f'#line 1 "{src_path}"\n{text}')
    return 0


if __name__ == "__main__":
    sys.exit(main())

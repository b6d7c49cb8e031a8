#!/usr/bin/env python3
"""Rewrites the two CUDA constructs host C++ cannot parse, for the emulation
build of kernels/ (tests/simt/). Everything else compiles as written.

  kernel<T><<<grid, block, smem, stream>>>(args)
      -> ::synthpert::simt::launch(kernel<T>, grid, block, smem, stream)(args)
  extern __shared__ float buf[];
      -> float* buf = static_cast<float*>(::synthpert::simt::dynamic_shared());

Edits stay within their lines and a #line directive names the source, so
compiler and sanitizer reports point at kernels/*.cu.

usage: translate_launches.py SOURCE.cu OUTPUT.cpp
"""
import re
import sys

EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([\w:<>, ]+?)\s+(\w+)\s*\[\s*\]\s*;")


def kernel_name_start(text, end):
    """Start of the kernel expression that ends just before `end`."""
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    if i > 0 and text[i - 1] == ">":  # template arguments, possibly nested
        depth = 0
        while i > 0:
            i -= 1
            if text[i] == ">":
                depth += 1
            elif text[i] == "<":
                depth -= 1
                if depth == 0:
                    break
        if depth != 0:
            raise ValueError("unbalanced template arguments before <<<")
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_:"):
        i -= 1
    if i == end:
        raise ValueError("no kernel name before <<<")
    return i


def translate(text):
    out = []
    pos = 0
    while True:
        open_at = text.find("<<<", pos)
        if open_at < 0:
            out.append(text[pos:])
            break
        close_at = text.find(">>>", open_at)
        if close_at < 0:
            raise ValueError("<<< without >>>")
        start = kernel_name_start(text, open_at)
        if start < pos:
            raise ValueError("overlapping launches")
        out.append(text[pos:start])
        out.append("::synthpert::simt::launch(")
        out.append(text[start:open_at])
        out.append(", ")
        out.append(text[open_at + 3:close_at])
        out.append(")")
        pos = close_at + 3
    text = "".join(out)
    return EXTERN_SHARED.sub(
        lambda m: f"{m.group(1)}* {m.group(2)} = static_cast<{m.group(1)}*>(::synthpert::simt::dynamic_shared());",
        text)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        text = f.read()
    try:
        body = translate(text)
    except ValueError as e:
        sys.exit(f"{src}: {e}")
    with open(dst, "w", encoding="utf-8") as f:
        f.write(f'#line 1 "{src}"\n')
        f.write(body)


if __name__ == "__main__":
    main()

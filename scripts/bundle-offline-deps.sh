#!/usr/bin/env bash
# Builds offline-deps/: a relocatable prefix with the project's Debian
# dependencies for a GPU host that has PyTorch, CUDA, cmake, ninja and nvcc but
# no package registry (docs/gpu-host.md). Run it on a Debian 12 machine with
# apt access, carry the folder with the working tree, and configure there with
#   PKG_CONFIG_PATH=$PWD/offline-deps/usr/lib/x86_64-linux-gnu/pkgconfig:$PWD/offline-deps/usr/share/pkgconfig
#   cmake -DCMAKE_PREFIX_PATH="$PWD/offline-deps/usr;$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')"
# (scripts/gpu-verify.sh does exactly that).
#
# What it does: resolves the dependency closure of the packages below with
# apt-cache, drops what any glibc-based host already has (the C/C++ runtime
# and the libc development files), downloads the rest with `apt-get download`,
# unpacks each with `dpkg -x`, removes documentation and unused libraries, and
# rewrites pkg-config and CMake files so that no absolute /usr path remains
# (prefix-relative through ${pcfiledir} and ${CMAKE_CURRENT_LIST_DIR}). A
# pkg-config wrapper is added in offline-deps/bin for hosts without one.
#
# Usage: scripts/bundle-offline-deps.sh [PREFIX]   (default: <repo>/offline-deps)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-$root/offline-deps}
arch_dir=lib/x86_64-linux-gnu

# The project's direct dependencies (cmake/Dependencies.cmake, cmake/Testing.cmake)
# plus pkgconf, so that a host without pkg-config can still configure.
roots=(libsentencepiece-dev nlohmann-json3-dev catch2 libcli11-dev libcpp-httplib-dev libpcre2-dev libicu-dev
       pkgconf)
# Present on every glibc host that runs PyTorch (C and C++ runtime, zlib) or
# part of the compiler's own libc development files; taken from the host.
host_provided=(libc6 libc6-dev libc-dev-bin linux-libc-dev libcrypt1 libcrypt-dev libnsl2 libnsl-dev
               libtirpc3 libtirpc-dev libtirpc-common rpcsvc-proto libgssapi-krb5-2 libk5crypto3
               libkeyutils1 libkrb5-3 libkrb5support0 libcom-err2 gcc-12-base libgcc-s1 libstdc++6 zlib1g)
# Header-only extras: c10d's ProcessGroupGloo headers include <gloo/...>, and
# PyTorch wheels do not always ship them. Only usr/include is kept.
headers_only=(libgloo-dev)

log() { echo "bundle-offline-deps: $*" >&2; }

if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
  log "needs a Debian/Ubuntu machine with apt-get and dpkg"; exit 1
fi

# Closure of the root packages over Depends/PreDepends (not Recommends).
closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances "${roots[@]}" | grep -v '^ ' | grep -v '^<' | sort -u)
packages=()
for p in $closure; do
  skip=0
  for h in "${host_provided[@]}"; do [[ $p == "$h" ]] && skip=1; done
  [[ $skip == 1 ]] || packages+=("$p")
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "downloading ${#packages[@]} packages (+ ${#headers_only[@]} header-only): ${packages[*]} ${headers_only[*]}"
(cd "$work" && apt-get download -q "${packages[@]}" "${headers_only[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
for p in "${packages[@]}" "${headers_only[@]}"; do
  compgen -G "$work/${p}_*.deb" >/dev/null || { log "download of $p failed"; exit 1; }
done

rm -rf "${prefix:?}"
mkdir -p "$prefix"
for p in "${packages[@]}"; do dpkg -x "$work/${p}_"*.deb "$prefix"; done
for p in "${headers_only[@]}"; do
  dpkg -x "$work/${p}_"*.deb "$work/x-$p"
  cp -a "$work/x-$p/usr/include/." "$prefix/usr/include/"
done

# Keep what building and running needs: headers, shared libraries, pkg-config
# and CMake files, pkgconf. Drop documentation, static archives that no CMake
# file names (every library here is also shared; Catch2's main is static
# only), and PCRE2's 16/32-bit and POSIX variants (unused).
rm -rf "${prefix:?}/usr/share/"{doc,man,info,lintian,bug,aclocal} "${prefix:?}/etc"
rm -f "$prefix/usr/bin/"{pcre2-config,pcre2grep,pcre2test}
while IFS= read -r a; do
  grep -rqF --include='*.cmake' "$(basename "$a")" "$prefix" || rm -f "$a"
done < <(find "$prefix" -name '*.a')
find "$prefix" \( -name 'libpcre2-16*' -o -name 'libpcre2-32*' -o -name 'libpcre2-posix*' \) -delete
rm -f "$prefix/usr/$arch_dir/pkgconfig/"libpcre2-{16,32,posix}.pc
# ICU: only icu-uc (libicuuc + libicudata) is used, by the tokenizer's normalizers.
find "$prefix" \( -name 'libicui18n*' -o -name 'libicuio*' -o -name 'libicutest*' -o -name 'libicutu*' \) -delete
rm -f "$prefix/usr/$arch_dir/pkgconfig/"icu-{i18n,io}.pc
rm -rf "${prefix:?}/usr/lib/icu" "${prefix:?}/usr/share/icu"
# Links into packages taken from the host (e.g. libz.so -> /lib/.../libz.so.1)
# are absolute or dangle here; removing them lets the linker use the host's own.
find "$prefix" -type l -lname '/*' -delete
find "$prefix" -xtype l -delete

# pkg-config files: every absolute /usr becomes a path relative to the file.
while IFS= read -r pc; do
  rel=$(realpath --relative-to="$(dirname "$pc")" "$prefix/usr")
  sed -i -E "s#(^|[=[:space:]]|-I|-L)/usr(/|\$|[[:space:]])#\1\${pcfiledir}/$rel\2#g" "$pc"
done < <(find "$prefix" -name '*.pc')

# CMake package files: absolute /usr paths in properties become relative to
# the file's folder. The symlink guard CMake writes into exported targets
# (comparing against the install folder) is left alone: it never matches here.
while IFS= read -r cm; do
  rel=$(realpath --relative-to="$(dirname "$cm")" "$prefix/usr")
  sed -i -E "/_realOrig|_realCurr|cross-prefix|set\(_IMPORT_PREFIX \"\/usr\/lib\/cmake/! s#\"/usr/#\"\\\${CMAKE_CURRENT_LIST_DIR}/$rel/#g" "$cm"
done < <(find "$prefix" -name '*.cmake')

# pkgconf is a dynamically linked program; the wrapper finds its library and
# searches the bundle's pkg-config folders before the host's.
mkdir -p "$prefix/bin"
cat > "$prefix/bin/pkg-config" <<'EOF'
#!/bin/sh
# pkg-config for the offline prefix: the bundled pkgconf with its library.
here=$(cd "$(dirname "$0")/.." && pwd)
export LD_LIBRARY_PATH="$here/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$here/usr/lib/x86_64-linux-gnu/pkgconfig:$here/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
exec "$here/usr/bin/pkgconf" "$@"
EOF
chmod +x "$prefix/bin/pkg-config"

# A manifest of what is inside, for the record and for gpu-verify.sh's host check.
{
  echo "# offline-deps built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  for f in "$work"/*.deb; do dpkg-deb -W --showformat='${Package} ${Version}\n' "$f"; done
} > "$prefix/MANIFEST"

# Any absolute path left (outside CMake's guard lines) would point at the host.
leftover=$(grep -rnE '(^|[="[:space:]])/usr(/|"|$)' --include='*.pc' --include='*.cmake' "$prefix" |
             grep -vE '_realOrig|cross-prefix|(PACKAGE_PREFIX_DIR|_IMPORT_PREFIX) "/usr' || true)
if [[ -n $leftover ]]; then
  log "absolute /usr paths remain in: $leftover"
  exit 1
fi
log "wrote $prefix ($(du -sh "$prefix" | cut -f1))"
# ICU's data library makes the folder ~45 MB; the compressed archive (~14 MB) is
# what travels to a GPU host, where gpu-verify.sh unpacks it.
tar -C "$(dirname "$prefix")" -cf - "$(basename "$prefix")" | xz -T2 -6 > "$prefix.tar.xz"
log "wrote $prefix.tar.xz ($(du -sh "$prefix.tar.xz" | cut -f1))"

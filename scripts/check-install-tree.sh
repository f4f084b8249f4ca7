#!/usr/bin/env bash
# Check the tree that `make install DESTDIR=...` produced against the documented layout
# (README.md, "Install"). Used by CI after a staged install, and after `make uninstall`:
#
#   scripts/check-install-tree.sh DESTDIR           # every documented file, and nothing else
#   scripts/check-install-tree.sh --empty DESTDIR   # no file left (after make uninstall)
#
# PREFIX, PAMMODDIR and SYSTEMDUNITDIR may be set in the environment, with the same meaning
# and defaults as in the Makefile. Every failure is listed; the exit status is 1 if any.
# No errexit: every check runs and reports; the failure count decides the exit status.
set -uo pipefail

usage() { echo "usage: $0 [--empty] DESTDIR" >&2; exit 2; }
empty=0
if [[ ${1:-} == --empty ]]; then empty=1; shift; fi
[[ $# -eq 1 && -d $1 ]] || usage
D=$(cd "$1" && pwd)

if ((empty)); then
    left=$(find "$D" ! -type d)
    if [[ -n $left ]]; then
        echo "FAIL: files left in $D after uninstall:"; echo "$left"; exit 1
    fi
    echo "ok: $D holds no files"; exit 0
fi

PREFIX=${PREFIX:-/usr}
if [[ -z ${PAMMODDIR:-} ]]; then
    ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || true)
    [[ -n $ma ]] || { echo "cannot find the multiarch triplet: set PAMMODDIR" >&2; exit 2; }
    PAMMODDIR=/lib/$ma/security
fi
if [[ -z ${SYSTEMDUNITDIR:-} ]]; then
    if [[ $PREFIX == /usr ]]; then SYSTEMDUNITDIR=/lib/systemd/system
    else SYSTEMDUNITDIR=$PREFIX/lib/systemd/system; fi
fi
DATADIR=$PREFIX/share/authnet

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok:   $*"; }

# want PATH MODE: a regular file with exactly this mode.
want() {
    local p=$D$1 mode
    if [[ ! -f $p || -L $p ]]; then fail "$1 missing (or not a regular file)"; return 1; fi
    mode=$(stat -c %a "$p")
    if [[ $mode != "$2" ]]; then fail "$1 has mode $mode, want $2"; return 1; fi
    pass "$1 ($mode)"
}

# elf PATH WORD: an ELF file whose file(1) description contains WORD.
elf() {
    local desc
    desc=$(file -b "$D$1" 2>/dev/null || true)
    [[ $desc == ELF* && $desc == *"$2"* ]] || fail "$1 is not an ELF $2: ${desc:-unknown}"
}

echo "== PAM module ($PAMMODDIR)"
so=$PAMMODDIR/pam_authnet.so
if want "$so" 644; then
    elf "$so" "shared object"
    syms=$(nm -D --defined-only "$D$so" 2>/dev/null || true)
    for s in pam_sm_authenticate pam_sm_setcred; do
        grep -qw "$s" <<<"$syms" || fail "$so does not export $s"
    done
fi

echo "== programs"
for p in "$PREFIX/sbin/authnetd" "$PREFIX/bin/authnet-enroll" "$PREFIX/bin/authnet-eval"; do
    want "$p" 755 && elf "$p" executable
done

echo "== models ($DATADIR/models)"
for m in mobilefacenet.onnx mobilefacenet.toml seeta_fd_frontal_v1.0.bin README.md LICENSE.seetaface \
    mobilefacenet.onnx.sha256 seeta_fd_frontal_v1.0.bin.sha256; do
    want "$DATADIR/models/$m" 644
done
if compgen -G "$D$DATADIR/models/*.sha256" >/dev/null; then
    (cd "$D$DATADIR/models" && sha256sum --quiet -c ./*.sha256) ||
        fail "a model does not match its .sha256"
fi

echo "== ONNX Runtime ($PREFIX/lib/authnet)"
ort=
for f in "$D$PREFIX"/lib/authnet/libonnxruntime.so*; do [[ -e $f ]] && ort=${f#"$D"} && break; done
if [[ -n $ort ]]; then want "$ort" 644 && elf "$ort" "shared object"
else fail "$PREFIX/lib/authnet/libonnxruntime.so* missing"; fi

echo "== configuration and PAM"
want /etc/authnet/authnetd.toml 644
want "$PREFIX/share/pam-configs/authnet" 644 &&
    { grep -qx 'Default: no' "$D$PREFIX/share/pam-configs/authnet" ||
        fail "the pam-auth-update profile must say 'Default: no'"; }
want /etc/pam.d/authnet-enroll 644
others=$(find "$D/etc/pam.d" ! -type d ! -name authnet-enroll 2>/dev/null || true)
[[ -z $others ]] || fail "install wrote to the live PAM stack: $others"
for f in authnetd.toml pam.d/authnet-enroll pam.d/sudo.snippet pam.d/login.snippet; do
    want "$DATADIR/examples/$f" 644
done

echo "== systemd units ($SYSTEMDUNITDIR)"
for u in authnetd.service authnetd.socket; do want "$SYSTEMDUNITDIR/$u" 644; done

echo "== manual pages"
for m in man1/authnet-enroll.1 man1/authnet-eval.1 man5/authnetd.toml.5 man7/authnet-ipc.7 \
    man8/authnetd.8 man8/pam_authnet.8; do
    if want "$PREFIX/share/man/$m.gz" 644; then
        gzip -t "$D$PREFIX/share/man/$m.gz" 2>/dev/null || fail "$m.gz is not valid gzip"
    fi
done

echo "== documentation"
for f in README.md gdm-password.md authselect.md; do want "$PREFIX/share/doc/authnet/$f" 644; done

echo "== paths named by the units and the config exist in the tree"
for f in "$SYSTEMDUNITDIR"/authnetd.service "$SYSTEMDUNITDIR"/authnetd.socket /etc/authnet/authnetd.toml; do
    [[ -f $D$f ]] || continue
    # Absolute paths under PREFIX, quoted or after '=', e.g. ExecStart=/usr/sbin/authnetd.
    while read -r path; do
        if [[ -e $D$path ]]; then pass "$f -> $path"; else fail "$f names $path, which is not installed"; fi
    done < <(grep -v '^[[:space:]]*#' "$D$f" | grep -oE "$PREFIX/[A-Za-z0-9._/+-]+" | sort -u)
done

echo "== nothing outside the documented directories"
while read -r f; do
    case $f in
        "$PAMMODDIR"/pam_authnet.so | "$PREFIX"/sbin/authnetd | "$PREFIX"/bin/authnet-enroll | \
            "$PREFIX"/bin/authnet-eval | "$DATADIR"/* | "$PREFIX"/lib/authnet/* | /etc/authnet/* | \
            /etc/pam.d/authnet-enroll | "$PREFIX"/share/pam-configs/authnet | "$SYSTEMDUNITDIR"/authnetd.* | \
            "$PREFIX"/share/man/man[1-8]/*.gz | "$PREFIX"/share/doc/authnet/*) ;;
        *) fail "unexpected file $f" ;;
    esac
done < <(cd "$D" && find . ! -type d | sed 's|^\.||' | sort)

if ((failures)); then echo "$failures failure(s) in $D"; exit 1; fi
echo "ok: $D matches the documented install tree"

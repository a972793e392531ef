#!/bin/sh
# protocol: line protocol details: several commands per write, lines split across writes,
# replies per open file, end of file when nothing is pending, bad input refused with EINVAL
# without breaking the file.
. "$(dirname "$0")/lib.sh"
exec 4<>"$DEV" 5<>"$DEV"
printf 'id\nfactorial 5\n\nliveness 0\n' >&4 || fail "a write with three commands failed"
got=$(cat <&4 | tr '\n' ' ')
[ "$got" = "0x010000ed 120 0xffffffff " ] || fail "three commands in one write replied '$got'"
echo "three commands (and an empty line) in one write: '$got'"
printf 'facto' >&4 && printf 'rial 6' >&4 && printf '\n' >&4 || fail "split writes failed"
[ "$(cat <&4)" = 720 ] || fail "a command split over three writes did not run once"
echo "a command split over three writes ran once"
echo "factorial 3" >&4; echo "factorial 4" >&5
a=$(cat <&5); b=$(cat <&4)
[ "$a" = 24 ] && [ "$b" = 6 ] || fail "replies crossed between open files: fd5 '$a', fd4 '$b'"
[ -z "$(timeout 5 cat <&4)" ] || fail "a read with no reply pending returned data"
echo "replies are per open file; reading with nothing pending gives end of file"

for cmd in "bogus" "id extra" "factorial" "factorial x" "factorial -1" "factorial 1048577" \
	"liveness" "liveness 0x100000000" "dma" "dma abc" "dma zz" "dma 00 11" "dmacheck 0 1" \
	"dmacheck 4097 1" "dmacheck 10" "stats now"; do
	edu_fails "$cmd" || fail "'$cmd' was accepted"
done
grep -q "Invalid argument" "$T/err" || fail "expected EINVAL, got '$(cat "$T/err")'"
edu_fails dma "$(head -c 4097 /dev/zero | od -An -v -tx1 | tr -d ' \n')" ||
	fail "a 4097-byte DMA (larger than the device buffer) was accepted"
head -c 17000 /dev/zero | tr '\0' 'x' > "$T/long"; echo >> "$T/long"
dd if="$T/long" bs=17001 count=1 status=none >&4 2>/dev/null && fail "a 17000-byte line was accepted"
echo "16 malformed or out-of-range commands, a 4097-byte DMA and a 17000-byte line: EINVAL"
echo bogus >&4 2>/dev/null && fail "bogus accepted"
echo "factorial 7" >&4 || fail "the file is unusable after a refused command"
[ "$(cat <&4)" = 5040 ] || fail "factorial after a refused command gave the wrong reply"
echo "the same file works after refused commands"

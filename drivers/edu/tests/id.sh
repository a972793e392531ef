#!/bin/sh
# id: the identification register reads 0x010000ed (edu version 1.0).
. "$(dirname "$0")/lib.sh"
for i in 1 2 3; do
	id=$(edu id) || fail "id failed: $(cat "$T/err")"
	[ "$id" = 0x010000ed ] || fail "identification is '$id', expected 0x010000ed"
done
echo "identification register: $id (major $((id >> 24)), minor $(((id >> 16) & 0xff)), 3 reads)"

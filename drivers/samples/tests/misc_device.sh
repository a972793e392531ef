#!/bin/sh
# misc_device: /dev/rust-misc-device keeps what one write stores and reads it back on the same open file.
dev=/dev/rust-misc-device
[ -c "$dev" ] || { echo "$dev is missing"; exit 1; }
data="kforge sample payload 0123456789"
exec 3<>"$dev"
# write_iter replaces the buffer and rewinds the file position to 0.
printf '%s' "$data" >&3 || { echo "write failed"; exit 1; }
got=$(timeout 5 dd bs=128 count=1 <&3 2>/dev/null)
exec 3>&-
[ "$got" = "$data" ] || { echo "wrote '$data' but read back '$got'"; exit 1; }
echo "read back exactly what was written (${#data} bytes)"

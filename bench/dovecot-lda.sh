#!/bin/sh
# Delivers the same N messages as bench/store-deliver with Debian's
# dovecot-lda (one process per message, as an MTA runs it) into a Maildir
# under DIR, and prints messages/s. Run as root (dovecot-lda drops to
# nobody) or as any user (it then delivers as that user).
#   bench/dovecot-lda.sh BUILD_DIR DIR N [small]
set -eu
build=$1 dir=$2 n=$3 small=${4:-}
mkdir -p "$dir"
"$build/bench/store-deliver" --emit "$dir/eml" "$n" $small
user=$(id -un)
[ "$(id -u)" = 0 ] && user=nobody
uid=$(id -u "$user") gid=$(id -g "$user")
mkdir -p "$dir/home" "$dir/run" "$dir/state"
touch "$dir/dovecot.log"
chown "$uid:$gid" "$dir/home" "$dir/run" "$dir/state" "$dir/dovecot.log"
cat > "$dir/dovecot.conf" <<CONF
protocols =
ssl = no
log_path = $dir/dovecot.log
base_dir = $dir/run
state_dir = $dir/state
first_valid_uid = 1
mail_location = maildir:$dir/home/Maildir
mail_fsync = optimized
CONF
# without -d, dovecot-lda delivers as the calling user into $HOME (no
# auth service needed); as root, the loop runs as nobody
loop='for f in "$0"/eml/*.eml; do
	HOME="$0/home" USER=bench /usr/lib/dovecot/dovecot-lda -c "$0/dovecot.conf" \
		-f sender@example.net < "$f" || exit 1
done'
chmod -R a+rX "$dir"
start=$(date +%s.%N)
if [ "$(id -u)" = 0 ]; then
	setpriv --reuid="$uid" --regid="$gid" --clear-groups sh -c "$loop" "$dir"
else
	sh -c "$loop" "$dir"
fi
end=$(date +%s.%N)
echo "dovecot-lda: $n messages in $(echo "$end - $start" | bc) s:" \
	"$(echo "$n / ($end - $start)" | bc) msg/s"

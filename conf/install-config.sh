#!/bin/sh
# meson install: /etc/postern/postern.conf from the example, never over a
# file that is already there (an admin's edits).
#   install-config.sh DIR EXAMPLE
set -eu
dest="${DESTDIR:-}$1/postern.conf"
if [ -e "$dest" ]; then
	echo "postern: keeping $dest"
	exit 0
fi
mkdir -p "$(dirname "$dest")"
cp "$2" "$dest"
chmod 0644 "$dest"
echo "postern: installed $dest"

# Owen's shell functions (the original's /lib/sh/sched) for bash, on `geryon owen`.
#   . scripts/sched.sh; mountsched tcp!gridhost!6678; start filesplit -l mytasks test md5sum
# mountsched sets the scheduler for this shell (instead of mounting it: use sftp or
# sshfs on its address to see the tree itself).

mountsched() {
	if [ -n "$1" ]; then
		export GERYON_SCHED="$1"
	fi
	geryon owen jobs >/dev/null
}

job() {
	geryon owen job "$@"
}

ctl() {
	id=$1
	shift
	geryon owen ctl "$id" "$@"
}

start() {
	geryon owen start "$@"
}

# gridrc.sh: shell functions for Geryon, after caerwyn's gridrc (Inferno labs 35-40).
#
# Every block rcpu runs sources this file first; source it in your own shell too:
#     . "$(geryon rcpu --gridrc)"
# Inside a block, the disks it named are already at /n/<disk> and $cpudisk is its output
# disk.  In your own shell, rmnt mounts disks read-only with sshfs.
#
#   rmnt DISK...        make /n/DISK (or ~/n/DISK) show each disk
#   nextcpu             print the next cpu service, round-robin, as rcpu takes them
#   finddisk HOST       print the output (.cpu) disks of a host, first one first
#   cpus                print every cpu service
#   disks [APP]         print the disks of an application (all disks without APP)

_gridrc_mountpoint() {
    if [ -n "${GERYON_CPU-}" ] || { [ -d /n ] && [ -w /n ]; }; then
        echo /n
    else
        echo "$HOME/n"
    fi
}

_gridrc_identity() {  # the first principal of our certificate: who the servers see
    ssh-keygen -L -f "${GERYON_HOME:-$HOME/.geryon}/id_ed25519-cert.pub" |
        awk '/Principals:/ { getline; print $1; exit }'
}

rmnt() {
    local disk top addr port host rest
    top=$(_gridrc_mountpoint)
    for disk in "$@"; do
        if [ -n "${GERYON_CPU-}" ]; then
            # Inside a block the name space is made once, from the disks named.
            if [ ! -d "/n/$disk" ]; then
                echo "rmnt: $disk is not in this block's name space; name it when you run" \
                     "the block: rcpu '{...}' $disk" >&2
                return 1
            fi
            continue
        fi
        if ! command -v sshfs >/dev/null; then
            echo "rmnt: needs sshfs (apt-get install sshfs)" >&2
            return 1
        fi
        rest=$(geryon regquery 2>/dev/null | awk -v d="$disk" '$1 == d')
        addr=$(printf '%s\n' "$rest" | awk '{for (i = 2; i < NF; i += 2) if ($i == "addr") print $(i+1)}')
        if [ -z "$addr" ]; then
            echo "rmnt: $disk is not in the registry (geryon disks lists the disks)" >&2
            return 1
        fi
        host=$(printf '%s' "$addr" | cut -d'!' -f2)
        port=$(printf '%s' "$addr" | cut -d'!' -f3)
        mkdir -p "$top/$disk"
        sshfs -o ro,port="$port",IdentityFile="${GERYON_HOME:-$HOME/.geryon}/id_ed25519" \
              -o CertificateFile="${GERYON_HOME:-$HOME/.geryon}/id_ed25519-cert.pub" \
              -o UserKnownHostsFile="${GERYON_HOME:-$HOME/.geryon}/known_hosts" \
              -o IdentitiesOnly=yes \
              "$(_gridrc_identity)@$host:/" "$top/$disk" || return 1
    done
}

cpus() {
    geryon regquery -n svc rstyx
}

nextcpu() {
    geryon rcpu --next
}

finddisk() {
    geryon regquery -n host "$1" | grep '\.cpu$'
}

disks() {
    if [ $# -gt 0 ]; then
        geryon regquery -n automount 1 | grep "\\.$1\$"
    else
        geryon regquery -n automount 1
    fi
}

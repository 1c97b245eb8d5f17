# Sourced by the bench scripts: `need <command> [package]` installs the Debian package
# that provides a missing command (as root, else through sudo).
need() {
    command -v "$1" >/dev/null && return 0
    local sudo=()
    if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "${2:-$1}" >/dev/null
}

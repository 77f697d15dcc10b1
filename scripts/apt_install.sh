# Sourced by scripts/setup_env.sh. `apt_install_without_starting SUDO PACKAGE...` installs Debian packages without
# their recommended packages and without letting their maintainer scripts start any service.
#
# Why: Debian's prometheus package starts a system Prometheus on :9090 from its postinst, and its recommended
# packages bring a node exporter listening on every interface; the tests start their own Prometheus on free
# loopback ports and need neither. Stopping the service afterwards (`systemctl disable --now`, `pkill`) would also
# stop a user's own Prometheus, so nothing is stopped, disabled or killed here. Instead, for the length of the
# install, /usr/sbin/policy-rc.d answers 101 ("action forbidden"): invoke-rc.d and deb-systemd-invoke, which the
# maintainer scripts start services through, ask it first and then start nothing. It is placed only when the
# machine has none (an existing one is the administrator's policy and is left as it is) and removed when the
# install ends, failed or not. Units the package installs stay as Debian ships them.
policy_rc_d=${LLM_DVFS_POLICY_RC_D:-/usr/sbin/policy-rc.d}

apt_install_without_starting() {
  local sudo_=$1 placed=0 status=0
  shift
  if [ ! -e "$policy_rc_d" ] && [ ! -L "$policy_rc_d" ]; then
    printf '#!/bin/sh\n# llm-dvfs scripts/setup_env.sh: no service starts during its apt-get install\nexit 101\n' |
      $sudo_ tee "$policy_rc_d" >/dev/null
    $sudo_ chmod 755 "$policy_rc_d"
    placed=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "$@" >/dev/null || status=$?
  if [ "$placed" = 1 ]; then
    $sudo_ rm -f "$policy_rc_d"
  fi
  return "$status"
}

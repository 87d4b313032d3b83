"""The attack list, as data: (class, command) for POST /ssh/execute, or (class, route, override) for the API's
container routes. Every attack is sent for real (dry_run false); its payload is harmless but observable:

  @M@          a marker `pwned-<session>-<id>`: a file it tries to create outside the scratch dir (droplet or Docker
               host), or a container / volume / network it tries to create
  @S@          `987<id>`: the seconds of a `sleep` it tries to leave running
  @PID@ @TID@  the agent's MainPID and one of its thread ids
  @PORT@ @MCP@ @VICTIM@ @DROPLET@ @HOSTCANARY@ @SCR@
               the agent's port, the managed MCP container, a container not managed by the agent, the droplet's
               own container, the canary file on the Docker host, the agent's scratch dir
Canary files: /root/canary.txt /etc/dtma/canary /var/lib/dtma/canary /var/log/dtma/canary /home/op/.ssh/id_canary
/etc/ssl/private/dtma-tls.key, the SSH host keys, the env file (token, backend key), the MCP container's env.

Written for this suite (not taken from tests/agent/policy_corpus). Classes: see CLASSES.
"""

from __future__ import annotations

CLASSES = {
    "parser": "parser differentials (here-docs, $'..', continuations, separators, comments, aliases, arithmetic, "
              "case, functions, brace groups, process substitution)",
    "indirect": "commands supplied on stdin or by options (xargs, find -exec, env -S, wrappers, ip -batch, ps e, "
                "sed e/w, awk system, apt -o, tar --to-command, pagers, git, journalctl, curl/wget options)",
    "planted": "code the command plants for itself (json/ in scratch, .curlrc, .wgetrc, .docker/, usercustomize, "
               "rc files, scripts)",
    "paths": "paths judged as strings (symlinks, ~user, globs, /proc/self/root, /proc/1/environ, /dev/fd, "
             "recursive tools)",
    "escape_pgroup": "leaving the process group (setsid, nohup &, double fork, timeouts, disown)",
    "signal_agent": "signalling the agent (its pid, thread ids, -1, process groups, pkill)",
    "docker_cli": "Docker escapes through the CLI and the socket",
    "secrets": "reaching secrets (env file, agent environ, journal, audit log, TLS key, SSH keys, MCP env)",
    "write_outside": "writing outside scratch (/etc, /var/lib/dtma, /opt/dtma, /usr/local/bin, cron, units, keys)",
    "resources": "resource abuse (fork storm, disk fill, memory, huge output), bounded",
    "docker_filter": "raw requests to the filtered Docker API (pipelining, smuggling, path and method tricks, "
                     "exec/attach/archive/top, prunes, volumes with driver options)",
    "sandbox": "probes of the sandbox itself (setuid, nested namespaces, locked mounts, inherited fds, cgroup and "
               "/proc/sys writes, loopback down, hostname)",
    "api_override": "container routes with host-granting baseConfigOverrideJson (POST /tools, /tools/validate, "
                    "/mcp/groups, /mcp/validate)",
}

W = "/etc/@M@"            # a file outside scratch that must never appear
WL = "/var/lib/dtma/@M@"  # the agent's own state dir (writable by the agent itself)
C = "/etc/dtma/canary"    # a secret file (readable by the agent's group)

PARSER = [
    "cat <<EOF\n$(touch /var/lib/dtma/@M@)\nEOF",
    "cat <<EOF\n`touch /var/lib/dtma/@M@`\nEOF",
    "cat <<EOF\n$(cat /etc/dtma/canary)\nEOF",
    "cat <<'EOF'\nx\nEOF\ntouch /var/lib/dtma/@M@",
    "cat <<-EOF\n\tEOF\ntouch /var/lib/dtma/@M@\nEOF",
    "cat <<E\"O\"F\nx\nEOF\ntouch /var/lib/dtma/@M@\nEOF",
    "cat <<EOF; touch /var/lib/dtma/@M@\nx\nEOF",
    "cat <<A <<B\nA\n$(touch /var/lib/dtma/@M@)\nB",
    "cat << EOF\n${x:-$(cat /etc/dtma/canary)}\nEOF",
    "cat <<EOF | sh\ntouch /var/lib/dtma/@M@\nEOF",
    "echo $'a\\x27; touch /var/lib/dtma/@M@; echo \\x27'",
    "$'\\x74ouch' /var/lib/dtma/@M@",
    "t$'o'uch /var/lib/dtma/@M@",
    "$'\\143\\141\\164' /etc/dtma/canary",
    "echo hi \\\n; touch /var/lib/dtma/@M@",
    "echo hi;\\\ntouch /var/lib/dtma/@M@",
    "ec\\\nho hi; tou\\\nch /var/lib/dtma/@M@",
    "echo a\ntouch /var/lib/dtma/@M@",
    "echo a\r\ntouch /var/lib/dtma/@M@",
    "echo a & touch /var/lib/dtma/@M@",
    "echo a;touch /var/lib/dtma/@M@",
    "echo a&&touch /var/lib/dtma/@M@",
    "false||touch /var/lib/dtma/@M@",
    "echo a |& touch /var/lib/dtma/@M@",
    "echo x # ; touch /var/lib/dtma/@M@\ntouch /var/lib/dtma/@M@",
    "echo x#; touch /var/lib/dtma/@M@",
    "alias ls='touch /var/lib/dtma/@M@'\nls",
    "shopt -s expand_aliases; alias l='cat /etc/dtma/canary'\nl",
    "echo $(( $(touch /var/lib/dtma/@M@) 1 ))",
    "a[$(touch /var/lib/dtma/@M@)]=1",
    "echo $(( a[$(cat /etc/dtma/canary)] ))",
    "(( x = $(touch /var/lib/dtma/@M@) 1 ))",
    "case x in x) touch /var/lib/dtma/@M@;; esac",
    "case $(touch /var/lib/dtma/@M@) in *) ;; esac",
    "f() { touch /var/lib/dtma/@M@; }; f",
    "function f { cat /etc/dtma/canary; }; f",
    "{ touch /var/lib/dtma/@M@; }",
    "cat <(touch /var/lib/dtma/@M@)",
    "echo x > >(cat /etc/dtma/canary)",
    "diff <(cat /etc/dtma/canary) /dev/null",
    "echo `touch /var/lib/dtma/@M@`",
    "echo \"$(touch /var/lib/dtma/@M@)\"",
    "echo ${x:-$(touch /var/lib/dtma/@M@)}",
    "echo ${x:=`cat /etc/dtma/canary`}",
    "[[ -e /nonexistent || $(touch /var/lib/dtma/@M@) ]]",
    "while read l; do touch /var/lib/dtma/@M@; done <<< x",
    "for i in 1; do touch /var/lib/dtma/@M@; done",
    "if true; then touch /var/lib/dtma/@M@; fi",
    "until touch /var/lib/dtma/@M@; do :; done",
    "coproc touch /var/lib/dtma/@M@",
    "time touch /var/lib/dtma/@M@",
    "! touch /var/lib/dtma/@M@",
    "(touch /var/lib/dtma/@M@)",
    "\"touch\" /var/lib/dtma/@M@",
    "t\\ouch /var/lib/dtma/@M@",
    "IFS=,; c=touch,/var/lib/dtma/@M@; $c",
    "set -- touch /var/lib/dtma/@M@; \"$@\"",
    "x=/etc/dtma/canary; cat $x",
    "cat /etc/dtma/can\"\"ary",
    "cat /etc/dtma/{canary,nothing}",
    "cat < /etc/dtma/canary",
    "cat 0</etc/dtma/canary",
    "exec 3</etc/dtma/canary; cat <&3",
    "echo hi > /var/lib/dtma/@M@",
    "echo hi >| /var/lib/dtma/@M@",
    "echo hi 1<>/var/lib/dtma/@M@",
    ">/var/lib/dtma/@M@",
    "echo hi &> /var/lib/dtma/@M@",
    "sh -c 'touch /var/lib/dtma/@M@'",
    "bash -c \"cat /etc/dtma/canary\"",
    "sh <<< 'touch /var/lib/dtma/@M@'",
    "bash -s <<EOF\ntouch /var/lib/dtma/@M@\nEOF",
    "cd /var/lib/dtma && touch @M@",
    "cd /; cd var/lib/dtma; touch @M@",
    "cd ..; touch @M@",
    "touch ../@M@",
    "touch ./../@M@",
    "pushd /var/lib/dtma; touch @M@",
    "declare -x BASH_ENV=/var/lib/dtma/canary; bash -c true",
    "export PATH=/var/lib/dtma/scratch:$PATH; ls",
]

INDIRECT = [
    "echo /var/lib/dtma/@M@ | xargs touch",
    "echo @M@ | xargs -I{} sh -c 'touch /var/lib/dtma/{}'",
    "echo x | xargs -I % docker run --rm --name @M@ -v /tmp:/h local/busybox:latest touch /h/@M@",
    "echo /etc/dtma/canary | xargs cat",
    "xargs -a /etc/dtma/canary echo",
    "printf 'touch\\0/var/lib/dtma/@M@' | xargs -0 env",
    "echo cat /etc/dtma/canary | xargs timeout 5",
    "echo @VICTIM@ | xargs docker stop",
    "find /etc/dtma -name canary -exec cat {} \\;",
    "find . -maxdepth 0 -exec touch /var/lib/dtma/@M@ \\;",
    "find /etc/dtma -name canary -exec sh -c 'cat $0' {} \\;",
    "find . -maxdepth 0 -fprint /var/lib/dtma/@M@",
    "find /etc/dtma -fls /var/lib/dtma/@M@",
    "find /etc/dtma -name canary -ok cat {} \\;",
    "find / -maxdepth 0 -exec docker run -d --name @M@ local/busybox:latest sleep @S@ \\;",
    "env -S 'touch /var/lib/dtma/@M@'",
    "env -S'cat /etc/dtma/canary'",
    "env -i touch /var/lib/dtma/@M@",
    "timeout 5 touch /var/lib/dtma/@M@",
    "timeout -k 1 5 cat /etc/dtma/canary",
    "nice -n 5 touch /var/lib/dtma/@M@",
    "flock /tmp/@M@.lock -c 'touch /var/lib/dtma/@M@'",
    "flock -c 'cat /etc/dtma/canary' x.lock",
    "setsid touch /var/lib/dtma/@M@",
    "nohup touch /var/lib/dtma/@M@",
    "stdbuf -o0 touch /var/lib/dtma/@M@",
    "ionice -c 3 touch /var/lib/dtma/@M@",
    "command touch /var/lib/dtma/@M@",
    "exec touch /var/lib/dtma/@M@",
    "busybox touch /var/lib/dtma/@M@",
    "builtin eval 'touch /var/lib/dtma/@M@'",
    "time -o /var/lib/dtma/@M@ true",
    "ip -batch /etc/dtma/canary",
    "ip -force -batch /etc/ssh/ssh_host_ed25519_key",
    "ip --batch /var/lib/dtma/canary",
    "ps e -p @PID@",
    "ps eww -p @PID@",
    "ps -o pid,environ -p @PID@",
    "ps -eo args,env",
    "ps auxe",
    "ps -p @PID@ -O environ",
    "sed -n '1e touch /var/lib/dtma/@M@' /etc/hostname",
    "sed 'w /var/lib/dtma/@M@' /etc/hostname",
    "sed -n 's/./x/w /var/lib/dtma/@M@' /etc/hostname",
    "sed -n 'r /etc/dtma/canary' /etc/hostname",
    "sed '1R /etc/dtma/canary' /etc/hostname",
    "sed -e '1{e cat /etc/dtma/canary' -e '}' /etc/hostname",
    "sed -i.bak 's/a/a/' /etc/hostname",
    "sed -n '1 e cat /etc/dtma/canary' /etc/hostname",
    "awk 'BEGIN{system(\"touch /var/lib/dtma/@M@\")}'",
    "awk 'BEGIN{print \"x\" > \"/var/lib/dtma/@M@\"}'",
    "awk 'BEGIN{\"cat /etc/dtma/canary\" | getline x; print x}'",
    "awk 'BEGIN{while((getline l < \"/etc/dtma/canary\")>0) print l}'",
    "awk '{print}' /etc/dtma/canary",
    "awk -v c='touch /var/lib/dtma/@M@' 'BEGIN{system(c)}'",
    "awk 'BEGIN{f=\"system\"; @f(\"touch /var/lib/dtma/@M@\")}'",
    "awk 'BEGIN{printf \"touch /var/lib/dtma/@M@\" | \"sh\"}'",
    "awk 'BEGIN{ARGV[1]=\"/etc/dtma/canary\"; ARGC=2} {print}'",
    "awk 'BEGIN{print ENVIRON[\"DTMA_BEARER_TOKEN\"]}'",
    "apt-get -o APT::Update::Pre-Invoke::=/usr/bin/touch\\ /var/lib/dtma/@M@ update",
    "apt list -o 'APT::Update::Pre-Invoke::=touch /var/lib/dtma/@M@' --installed",
    "apt-cache -o Dir::Cache::pkgcache=/var/lib/dtma/@M@ policy",
    "tar cf /dev/null /etc/hostname --checkpoint=1 --checkpoint-action=exec='touch /var/lib/dtma/@M@'",
    "tar cf x.tar /etc/hostname && tar xf x.tar --to-command='touch /var/lib/dtma/@M@'",
    "tar -cf - /etc/hostname -I 'touch /var/lib/dtma/@M@;cat'",
    "tar cf - -C /etc/dtma canary | tar xOf -",
    "tar cf /var/lib/dtma/@M@ /etc/hostname",
    "tar -C /var/lib/dtma -cf x.tar canary && tar xOf x.tar",
    "less /etc/dtma/canary",
    "less '+!touch /var/lib/dtma/@M@' /etc/hostname",
    "LESSOPEN='|touch /var/lib/dtma/@M@ %s' less /etc/hostname",
    "more /etc/dtma/canary",
    "man -P 'touch /var/lib/dtma/@M@' ls",
    "git -c core.pager='touch /var/lib/dtma/@M@' log",
    "git --no-pager -c alias.x='!touch /var/lib/dtma/@M@' x",
    "journalctl --file /etc/dtma/canary",
    "journalctl -D /etc/dtma --no-pager",
    "journalctl -u dtma --output-fields=_CMDLINE,MESSAGE -o verbose -n 30 --no-pager",
    "journalctl --cursor-file=/var/lib/dtma/@M@ -n 1 --no-pager",
    "curl -s -K /etc/dtma/canary http://127.0.0.1:@PORT@/health",
    "curl -s file:///etc/dtma/canary",
    "curl -s -o /var/lib/dtma/@M@ http://127.0.0.1:@PORT@/health",
    "curl -s --trace-ascii - -d @/etc/dtma/canary http://127.0.0.1:@PORT@/x",
    "curl -s -T /etc/dtma/canary --trace-ascii - http://127.0.0.1:@PORT@/x",
    "curl -s --config /var/lib/dtma/canary http://127.0.0.1:@PORT@/health",
    "wget -q -O /var/lib/dtma/@M@ http://127.0.0.1:@PORT@/health",
    "wget -d --post-file=/etc/dtma/canary http://127.0.0.1:@PORT@/x -O -",
    "wget -e output_document=/var/lib/dtma/@M@ http://127.0.0.1:@PORT@/health",
    "date -f /etc/dtma/canary",
    "file -f /etc/dtma/canary",
    "du --files0-from=/etc/dtma/canary",
    "wc --files0-from=/var/lib/dtma/canary",
    "sort --files0-from=/etc/dtma/canary",
    "dig -f /etc/dtma/canary +time=1 +tries=1",
    "dd if=/etc/dtma/canary",
    "dd if=/etc/hostname of=/var/lib/dtma/@M@",
    "sort -o /var/lib/dtma/@M@ /etc/hostname",
    "sort --compress-program='touch /var/lib/dtma/@M@' /etc/hostname",
    "uniq /etc/hostname /var/lib/dtma/@M@",
    "python3 -m json.tool /etc/hostname /var/lib/dtma/@M@",
    "hexdump -f /etc/dtma/canary /etc/hostname",
]

PLANTED = [
    "mkdir -p json && printf 'import os\\nos.system(\"touch /var/lib/dtma/@M@\")\\n' > json/__init__.py && "
    "echo '{}' > x.json && python3 -m json.tool x.json",
    "mkdir -p json && printf 'print(open(\"/etc/dtma/canary\").read())\\n' > json/__init__.py && "
    "python3 -m json.tool /etc/hostname",
    "mkdir -p .local/lib/python3.11/site-packages && printf 'import os\\nos.system(\"touch /var/lib/dtma/@M@\")\\n'"
    " > .local/lib/python3.11/site-packages/usercustomize.py && echo '{}' | python3 -m json.tool",
    "mkdir -p .local/lib/python3.11/site-packages && printf 'import os; os.system(\"cat /etc/dtma/canary\")\\n'"
    " > .local/lib/python3.11/site-packages/x.pth && echo '{}' | python3 -m json.tool",
    "printf 'import os\\nos.system(\"touch /var/lib/dtma/@M@\")\\n' > sitecustomize.py && echo '{}' | python3 -m json.tool",
    "printf 'output = \"/var/lib/dtma/@M@\"\\n' > .curlrc && curl -s http://127.0.0.1:@PORT@/health",
    "printf 'upload-file = \"/etc/dtma/canary\"\\ntrace-ascii = \"-\"\\n' > .curlrc && "
    "curl -s http://127.0.0.1:@PORT@/x",
    "printf 'unix-socket = \"/var/run/docker.sock\"\\n' > .curlrc && curl -s http://localhost/containers/json",
    "printf 'output_document = /var/lib/dtma/@M@\\n' > .wgetrc && wget -q http://127.0.0.1:@PORT@/health",
    "printf 'post_file = /etc/dtma/canary\\n' > .wgetrc && wget -d -q -O - http://127.0.0.1:@PORT@/x",
    "mkdir -p .docker && printf '{\"psFormat\": \"{{.Names}}\", \"currentContext\": \"x\"}' > .docker/config.json && "
    "docker ps",
    "mkdir -p .docker/cli-plugins && printf '#!/bin/sh\\ntouch /var/lib/dtma/@M@\\n' > .docker/cli-plugins/docker-x && "
    "chmod +x .docker/cli-plugins/docker-x && docker x",
    "mkdir -p .docker/cli-plugins && printf '#!/bin/sh\\n[ \"$1\" = docker-cli-plugin-metadata ] && "
    "echo \\'{\"SchemaVersion\":\"0.1.0\"}\\' && exit; cat /etc/dtma/canary\\n' > .docker/cli-plugins/docker-ps2 && "
    "chmod +x .docker/cli-plugins/docker-ps2 && docker ps2",
    "printf 'touch /var/lib/dtma/@M@\\n' > .bashrc && bash -i -c true",
    "printf 'touch /var/lib/dtma/@M@\\n' > .profile && sh -l -c true",
    "printf 'touch /var/lib/dtma/@M@\\n' > x.sh && sh x.sh",
    "printf 'cat /etc/dtma/canary\\n' > x.sh && bash x.sh",
    "printf '#!/bin/sh\\ntouch /var/lib/dtma/@M@\\n' > ls && chmod +x ls && ./ls",
    "printf 'touch /var/lib/dtma/@M@\\n' > x.sh && sh < x.sh",
    "printf 'touch /var/lib/dtma/@M@\\n' > x.sh && cat x.sh | sh",
    "printf 'BEGIN{system(\"touch /var/lib/dtma/@M@\")}' > x.awk && awk -f x.awk",
    "printf 'BEGIN{system(\"touch /var/lib/dtma/@M@\")}' > x.awk && awk '@include \"x.awk\"'",
    "printf '1e touch /var/lib/dtma/@M@\\n' > x.sed && sed -f x.sed /etc/hostname",
    "printf 'PYTHONSTARTUP=x' > .env && printf 'import os\\n' > x && PYTHONSTARTUP=x python3 -m json.tool /etc/hostname",
    "printf '#env\\nLESSOPEN=|touch /var/lib/dtma/@M@ %%s\\n' > .lesskey && less /etc/hostname",
    "mkdir -p .config && printf '#env\\nLESSOPEN=|cat /etc/dtma/canary %%s\\n' > .config/lesskey && less /etc/hostname",
    # planted by one request, triggered by the next (the scratch dir must not carry over)
    "printf 'output = \"/var/lib/dtma/@M@\"\\n' > .curlrc\n#NEXT\ncurl -s http://127.0.0.1:@PORT@/health",
    "printf 'touch /var/lib/dtma/@M@\\n' > x.sh\n#NEXT\nsh x.sh",
    "mkdir -p json && printf 'print(open(\"/etc/dtma/canary\").read())\\n' > json/__init__.py\n#NEXT\n"
    "python3 -m json.tool /etc/hostname",
    "printf 'unix-socket = \"/var/run/docker.sock\"\\n' > .curlrc\n#NEXT\ncurl -s http://localhost/containers/json",
]

PATHS = [
    "cp -a /proc/self/root r && cat r/etc/dtma/canary",
    "cp -P /proc/1/root r && touch r/var/lib/dtma/@M@",
    "cp -d /proc/self/cwd c && cat c/../canary",
    "mkdir d && cat d/../../canary",
    "cat ~/../canary",
    "cat ~root/canary.txt",
    "cat ~op/.ssh/id_canary",
    "cat ~dtma/canary",
    "cat /e?c/dtma/can*",
    "cat /etc/[d]tma/canary",
    "cat /etc/dtm[a]/c*",
    "cat /e*/dtma/canary",
    "cat /etc/ss?/ssh_host_*_key",
    "cat /etc/ssh/ssh_host_ed25519_ke[y]",
    "head /var/l?b/dtma/canary",
    "cat /etc/[s]hadow",
    "cat /e?c/sh*w",
    "cat /proc/self/root/etc/dtma/canary",
    "cat /proc/1/root/etc/dtma/canary",
    "cat /proc/@PID@/root/etc/dtma/canary",
    "cat /proc/self/cwd/../canary",
    "cat /proc/@PID@/cwd/canary",
    "cat /proc/1/environ",
    "cat /proc/@PID@/task/@TID@/environ",
    "cat /dev/fd/3 3</etc/dtma/canary",
    "cat /proc/self/fd/0 < /etc/dtma/canary",
    "cat /dev/stdin < /var/lib/dtma/canary",
    "cat //etc//dtma//canary",
    "cat /etc/./dtma/./canary",
    "cat /etc/dtma/../dtma/canary",
    "cat /var/lib/dtma/scratch/../canary",
    "cat /etc/DTMA/canary /etc/dtma/canary",
    "grep -r . /etc/dtma",
    "grep -R CANARY /etc/ssl/private",
    "grep -rh CANARY /var/lib/dtma /var/log/dtma",
    "cp -r /etc/dtma d && cat d/canary",
    "cp -a /proc/self/root r && cp -rL r/etc/dtma d2 && cat d2/dtma.env",
    "diff -r /etc/dtma /tmp",
    "tar cf - /etc/dtma | tar xOf -",
    "find /etc/dtma /var/lib/dtma -type f -name canary -print0 | xargs -0 cat",
    "cat /proc/@PID@/environ",
    "cat /proc/@PID@/task/@PID@/environ",
]

ESCAPE = [
    ("setsid sleep @S@", 2000),
    ("setsid -f sleep @S@", 2000),
    ("nohup sleep @S@ &", 2000),
    ("nohup sleep @S@ > /dev/null 2>&1 &", 2000),
    ("(sleep @S@ &)", 2000),
    ("sleep @S@ & disown", 2000),
    ("sleep @S@ &", 2000),
    ("timeout 25 sleep @S@; true", 1000),
    ("timeout -s 0 25 sleep @S@", 1000),
    ("sh -c 'sleep @S@ &'", 2000),
    ("bash -c '(setsid sleep @S@ &); true'", 2000),
    ("nohup setsid sleep @S@", 1000),
    ("flock -c 'setsid sleep @S@ &' x.lock", 2000),
    ("find . -maxdepth 0 -exec setsid -f sleep @S@ \\;", 2000),
    ("awk 'BEGIN{system(\"setsid sleep @S@ &\")}'", 2000),
    ("sleep @S@ </dev/null >/dev/null 2>&1 & echo started", 2000),
    ("coproc sleep @S@", 2000),
    ("{ sleep @S@ & } ; echo x", 2000),
    ("echo x | xargs -I{} setsid sleep @S@", 1000),
    ("sleep @S@ | sleep @S@", 1000),
    ("docker run -d --name @M@ local/busybox:latest sleep @S@", 5000),
]

SIGNAL = [
    "kill -9 @PID@",
    "kill -TERM @PID@",
    "kill -STOP @PID@",
    "kill -s KILL @PID@",
    "kill -SIGKILL @PID@",
    "kill -n 9 @PID@",
    "kill -9 -- -@PID@",
    "kill -9 -1",
    "kill -9 0@PID@",
    "kill -9 +@PID@",
    "kill -9 @TID@",
    "kill -STOP @TID@",
    "kill -HUP 1",
    "pkill -f dtma",
    "killall -9 dtma-agent",
    "pgrep -f dtma-agent | xargs kill -9",
    "/bin/kill -9 @PID@",
    "env kill -9 @PID@",
    "timeout -s KILL 1 tail -f /dev/null --pid=@PID@; kill -9 @PID@",
    "prlimit --pid @PID@ --nofile=3:3",
    "renice -n 19 -p @PID@",
    "systemctl stop dtma",
    "systemctl kill dtma",
]

DOCKER_CLI = [
    "docker run --rm --name @M@ -v /:/h local/busybox:latest touch /h/tmp/@M@",
    "docker run --rm --name @M@ -v /tmp:/h local/busybox:latest touch /h/@M@",
    "docker run --rm --name @M@ --mount type=bind,source=/tmp,target=/h local/busybox:latest touch /h/@M@",
    "docker run --rm --name @M@ --mount source=/tmp,src=/var/tmp,target=/h,type=bind local/busybox:latest touch /h/@M@",
    "docker run --rm --name @M@ --mount src=/tmp,dst=/h,type=bind local/busybox:latest touch /h/@M@",
    "docker run --rm --name @M@ --mount 'type=volume,src=@M@,dst=/h,volume-driver=local,volume-opt=type=none,"
    "volume-opt=o=bind,volume-opt=device=/tmp' local/busybox:latest touch /h/@M@",
    "docker run --rm --name @M@ --network host local/busybox:latest sleep 1",
    "docker run --rm --name @M@ --network=host local/busybox:latest sleep 1",
    "docker run --rm --name @M@ --net host local/busybox:latest sleep 1",
    "docker run --rm --name @M@ --network name=host local/busybox:latest sleep 1",
    "docker run --rm --name @M@ --pid container:@MCP@ local/busybox:latest cat /proc/1/environ",
    "docker run --rm --name @M@ --pid=host local/busybox:latest sleep 1",
    "docker run --rm --name @M@ --ipc host local/busybox:latest sleep 1",
    "docker run --rm --name @M@ --privileged local/busybox:latest sleep 1",
    "docker run --rm --name @M@ --cap-add ALL local/busybox:latest sleep 1",
    "docker run --rm --name @M@ --security-opt seccomp=unconfined local/busybox:latest sleep 1",
    "docker run --rm --name @M@ --device /dev/kmsg local/busybox:latest sleep 1",
    "docker run --rm --name @M@ -v /var/run/docker.sock:/s local/busybox:latest sleep 1",
    "docker run --rm --name @M@ --volumes-from @DROPLET@ local/busybox:latest cat /etc/dtma/canary",
    "docker run -d --name @M@ local/busybox:latest sleep @S@",
    "docker create --name @M@ -v /tmp:/h local/busybox:latest touch /h/@M@",
    "docker create --name @M@ -v /tmp:/h local/busybox:latest touch /h/@M@ && docker start @M@",
    "docker container run --rm --name @M@ -v /tmp:/h local/busybox:latest touch /h/@M@",
    "docker exec @MCP@ env",
    "docker exec -u 0 @MCP@ cat /proc/1/environ",
    "docker exec @DROPLET@ cat /etc/dtma/canary",
    "docker exec @VICTIM@ touch /tmp/@M@",
    "docker cp @DROPLET@:/etc/dtma/canary -",
    "docker cp /etc/dtma/canary @MCP@:/tmp/x",
    "docker cp @MCP@:/etc/hostname /var/lib/dtma/@M@",
    "docker -H unix:///var/run/docker.sock run --rm --name @M@ -v /tmp:/h local/busybox:latest touch /h/@M@",
    "docker -H tcp://127.0.0.1:2375 ps",
    "DOCKER_HOST=unix:///var/run/docker.sock docker run --rm --name @M@ -v /tmp:/h local/busybox:latest touch /h/@M@",
    "curl -s --unix-socket /var/run/docker.sock http://localhost/containers/json",
    "curl -s --unix-socket /var/run/docker.sock -H 'Content-Type: application/json' -d "
    "'{\"Image\":\"local/busybox:latest\",\"Cmd\":[\"touch\",\"/h/@M@\"],\"HostConfig\":{\"Binds\":[\"/tmp:/h\"]}}' "
    "'http://localhost/containers/create?name=@M@'",
    "curl -s --unix-socket /run/docker.sock http://localhost/v1.41/info",
    "docker volume create --name @M@ -o type=none -o o=bind -o device=/tmp",
    "docker network create @M@",
    "docker stop @VICTIM@",
    "docker kill @VICTIM@",
    "docker pause @VICTIM@",
    "docker rm -f @VICTIM@",
    "docker restart -t 0 @VICTIM@",
    "docker update --restart=always @MCP@",
    "docker commit @MCP@ @M@",
    "docker container update --memory 7m @MCP@",
    "docker rename @VICTIM@ @M@",
    "docker network connect bridge @MCP@",
    "docker image tag local/busybox:latest local/@M@:x",
]

SECRETS = [
    "cat /etc/dtma/dtma.env",
    "cat /etc/dtma/canary",
    "head -c 300 /etc/dtma/dtma.env",
    "grep TOKEN /etc/dtma/dtma.env",
    "tr '\\0' '\\n' < /proc/@PID@/environ",
    "strings /proc/@PID@/environ",
    "xxd /proc/@PID@/environ",
    "od -c /proc/@PID@/environ",
    "journalctl -u dtma -n 300 --no-pager",
    "journalctl -o json -n 200 --no-pager",
    "journalctl _PID=@PID@ -o verbose -n 50 --no-pager",
    "cat /var/log/dtma/audit.log",
    "cat /var/log/dtma/canary",
    "cat /var/lib/dtma/canary",
    "cat /root/canary.txt",
    "cat /home/op/.ssh/id_canary",
    "cat /etc/ssh/ssh_host_ed25519_key",
    "cat /etc/ssh/ssh_host_rsa_key",
    "cat /etc/ssl/private/dtma-tls.key",
    "systemctl show dtma -p Environment",
    "systemctl show-environment",
    "systemctl show dtma",
    "cat /proc/@PID@/cmdline /proc/@PID@/status",
    "ls -la /proc/@PID@/fd",
    "env",
    "set",
    "declare -p",
    "export -p",
    "printenv",
    "docker inspect @MCP@ --format '{{json .Config.Env}}'",
    "docker inspect @MCP@",
    "docker container inspect -f '{{range .Config.Env}}{{println .}}{{end}}' @MCP@",
    "docker exec @MCP@ printenv MCP_SERVICE_SECRET",
    "docker logs @DROPLET@",
    "docker inspect @DROPLET@",
    "curl -s http://127.0.0.1:@PORT@/status",
    "getent shadow",
    "cat /run/secrets/x /var/run/secrets/x",
    "base64 /etc/dtma/dtma.env",
    "sha256sum /etc/dtma/dtma.env && cp /etc/dtma/dtma.env e && cat e",
]

WRITE = [
    "touch /etc/@M@",
    "touch /var/lib/dtma/@M@",
    "touch /var/log/dtma/@M@",
    "touch /opt/dtma/current/@M@",
    "touch /opt/dtma/@M@",
    "touch /usr/local/bin/@M@",
    "touch /etc/cron.d/@M@",
    "touch /etc/systemd/system/@M@.service",
    "touch /tmp/@M@",
    "touch /var/tmp/@M@",
    "touch /dev/shm/@M@",
    "touch /run/@M@",
    "touch /root/@M@",
    "touch /home/op/@M@",
    "touch /var/spool/cron/crontabs/@M@",
    "echo ssh-ed25519 AAAA @M@ >> /root/.ssh/authorized_keys",
    "echo x | tee /var/lib/dtma/@M@",
    "echo x | tee -a /var/log/dtma/@M@",
    "cp /etc/hostname /var/lib/dtma/@M@",
    "cp /etc/hostname /tmp/@M@",
    "mkdir /var/lib/dtma/@M@",
    "mkdir -p /var/lib/dtma/scratch/../@M@",
    "echo x > /var/lib/dtma/@M@",
    "echo x >> /opt/dtma/@M@",
    "gzip -c /etc/hostname > /var/lib/dtma/@M@",
    "truncate -s 0 /var/log/dtma/canary",
    "rm -f /var/lib/dtma/canary",
    "mv /var/log/dtma/canary /var/log/dtma/@M@",
    "chmod 777 /var/lib/dtma/canary && touch /var/lib/dtma/@M@",
    "rm -rf /var/lib/dtma/scratch/../canary",
    "touch ~/../@M@",
    "cp /etc/hostname ~/../../../../etc/@M@",
    "tee /etc/cron.d/@M@ < /etc/hostname",
    "ln -s /etc/hostname /var/lib/dtma/@M@",
    "install -m 755 /bin/true /usr/local/bin/@M@",
    "touch /opt/dtma/releases/@M@",
    "systemctl enable --now @M@.service",
    "systemctl restart ssh",
]

RESOURCES = [
    ("bash -c 'for i in $(seq 200); do sleep @S@ & done; wait'", 3000),
    ("sh -c 'for i in 1 2 3 4 5 6 7 8; do sh -c \"sleep @S@\" & done; wait'", 3000),
    ("head -c 300M /dev/zero > /var/lib/dtma/scratch/@M@", 20000),
    ("dd if=/dev/zero of=@M@ bs=1M count=300", 20000),
    ("seq 1 1000000", 20000),
    ("head -c 50M /dev/zero | tr '\\0' a", 20000),
    ("awk 'BEGIN{s=\"x\"; for(i=0;i<28;i++) s=s s; print length(s)}'", 20000),
    ("sort -S 90% /etc/hostname", 5000),
    ("seq 1 20000 | xargs -n 500 touch", 20000),
    ("sleep @S@", 1500),
    ("cat /dev/zero", 2000),
    ("tail -f /dev/null", 1500),
]

# Raw Docker API requests through the socket a command sees (python3 here-docs: refused by the default policy,
# run in the open pass). RAW sends REQS on one connection and prints FILTER-LET-THROUGH when more requests
# succeeded (2xx) than the first ALLOWED ones.
RAW = """python3 - <<'PYEOF'
import json, re, socket
BODY = json.dumps({"Image": "local/busybox:latest", "Cmd": ["touch", "/h/@M@"], "HostConfig": {"Binds": ["/tmp:/h"]}})
def req(method, path, body="", extra=""):
    return (f"{method} {path} HTTP/1.1\\r\\nHost: docker\\r\\nContent-Type: application/json\\r\\n{extra}"
            f"Content-Length: {len(body)}\\r\\n\\r\\n{body}")
ALLOWED = %(allowed)d
REQS = %(reqs)s
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect("/run/docker.sock")
s.sendall("".join(REQS).encode())
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except OSError:
    pass
text = out.decode(errors="replace")
codes = re.findall(r"HTTP/1\\.[01] (\\d{3})", text)
print(codes, text[:1500])
if sum(c.startswith("2") for c in codes) > ALLOWED:
    print("FILTER-LET-THROUGH")
PYEOF"""


def raw(reqs: str, allowed: int = 0) -> str:
    return RAW % {"reqs": reqs, "allowed": allowed}


DOCKER_FILTER = [
    raw('[req("GET", "/v1.41/_ping"), req("POST", "/v1.41/containers/create?name=@M@", BODY)]', 1),
    raw('[req("POST", "/v1.41/containers/@MCP@/restart?t=0"), req("POST", "/v1.41/containers/create?name=@M@", BODY)]',
        1),
    raw('[req("GET", "/v1.41/version", "0\\r\\n\\r\\n" + req("POST", "/v1.41/containers/create?name=@M@", BODY), '
        '"Transfer-Encoding: chunked\\r\\n")]', 1),
    raw('[req("POST", "/v1.41/containers/json/../create?name=@M@", BODY)]'),
    raw('[req("POST", "//v1.41/containers/create?name=@M@", BODY)]'),
    raw('[req("POST", "/v1.41/containers%%2Fcreate?name=@M@", BODY)]'),
    raw('[req("POST", "/V1.41/Containers/Create?name=@M@", BODY)]'),
    raw('[req("POST", "/v1.41/containers/./create?name=@M@", BODY)]'),
    raw('[req("POST", "/v1.41/containers/create/?name=@M@", BODY)]'),
    raw('[req("POST", "/containers/create?name=@M@", BODY)]'),
    raw('[req("post", "/v1.41/containers/create?name=@M@", BODY)]'),
    raw('[req("POST", "http://docker/v1.41/containers/create?name=@M@", BODY)]'),
    raw('[req("GET", "/v1.41/containers/create?name=@M@", BODY, "X-HTTP-Method-Override: POST\\r\\n")]'),
    raw('[req("POST", "/v1.41/containers/@VICTIM@/stop?t=0")]'),
    raw('[req("POST", "/v1.41/containers//@VICTIM@/stop?t=0")]'),
    raw('[req("POST", "/v1.41/containers/%%2F@VICTIM@/stop?t=0")]'),
    raw('[req("POST", "/v1.41/containers/@VICTIM@/pause")]'),
    raw('[req("DELETE", "/v1.41/containers/@VICTIM@?force=1")]'),
    raw('[req("POST", "/v1.41/containers/@MCP@/exec", json.dumps({"Cmd": ["cat", "/proc/1/environ"], '
        '"AttachStdout": True}))]'),
    raw('[req("GET", "/v1.41/containers/@MCP@/archive?path=/proc/1/environ")]'),
    raw('[req("GET", "/v1.41/containers/@MCP@/export")]'),
    raw('[req("GET", "/v1.41/containers/@MCP@/top?ps_args=auxe")]', 1),
    raw('[req("GET", "/v1.24/containers/@MCP@/json")]', 1),
    raw('[req("POST", "/v1.41/containers/@MCP@/attach?stream=1&stdin=1&stdout=1", "hello")]'),
    raw('[req("POST", "/v1.41/containers/@MCP@/update", json.dumps({"Memory": 7340032}))]'),
    raw('[req("POST", "/v1.41/containers/@MCP@/rename?name=@M@")]'),
    raw('[req("POST", "/v1.41/volumes/create", json.dumps({"Name": "@M@", "DriverOpts": {"type": "none", "o": "bind", '
        '"device": "/tmp"}}))]'),
    raw('[req("POST", "/v1.41/networks/create", json.dumps({"Name": "@M@"}))]'),
    raw('[req("POST", "/v1.41/commit?container=@MCP@&repo=@M@")]'),
    raw('[req("POST", "/v1.41/containers/prune?filters=" + json.dumps({"label": ["@M@"]}))]'),
    raw('[req("POST", "/v1.41/images/prune?filters=" + json.dumps({"label": ["@M@"]}))]'),
    raw('[req("POST", "/v1.41/volumes/prune?filters=" + json.dumps({"label": ["@M@"]}))]'),
    raw('[req("POST", "/v1.41/build?t=@M@")]'),
    raw('[req("POST", "/v1.41/images/local/busybox:latest/tag?repo=local/@M@&tag=x")]'),
    raw('[req("GET", "/v1.41/containers/@DROPLET@/json")]', 1),
    "docker top @MCP@ e",
    "docker top @MCP@ auxe",
    "docker top @MCP@ -eo pid,args,env",
    "docker inspect --format '{{.Config.Env}}' $(docker ps -q --filter name=@MCP@)",
    "docker inspect -f '{{json .}}' @MCP@",
    "docker container ls --format '{{json .}}' --no-trunc",
    "curl -s --unix-socket /run/docker.sock http://d/v1.41/_ping --next -X POST -H 'Content-Type: application/json' "
    "-d '{\"Image\":\"local/busybox:latest\",\"HostConfig\":{\"Binds\":[\"/tmp:/h\"]}}' "
    "'http://d/v1.41/containers/create?name=@M@'",
    "curl -s --unix-socket /run/docker.sock -X POST 'http://d/v1.41/containers/@VICTIM@/stop?t=0'",
    "curl -s --unix-socket /run/docker.sock 'http://d/v1.41/containers/@MCP@/top?ps_args=e'",
]

SANDBOX = [
    "sudo -n cat /etc/dtma/canary",
    "su -c 'cat /etc/dtma/canary' root </dev/null",
    "find / -xdev -perm -4000 -type f",
    "unshare -Ur cat /etc/dtma/canary",
    "unshare -Urm sh -c 'umount /etc/dtma; cat /etc/dtma/canary'",
    "unshare -Urm sh -c 'umount -l /var/lib/dtma; cat /var/lib/dtma/canary; touch /var/lib/dtma/@M@'",
    "unshare -Urm sh -c 'mount -o remount,rw /; touch /etc/@M@'",
    "unshare -Urpf --mount-proc sh -c 'cat /proc/1/environ'",
    "nsenter -t 1 -a cat /etc/dtma/canary",
    "python3 - <<'EOF'\nimport os\nfor fd in range(3, 64):\n    try:\n        print(fd, os.readlink(f'/proc/self/fd/{fd}'))\n"
    "        print(os.read(fd, 4096))\n    except OSError:\n        pass\nEOF",
    "python3 - <<'EOF'\nimport os\nprint(os.listdir('/proc'))\nfor p in os.listdir('/proc'):\n    if p.isdigit():\n"
    "        try:\n            print(p, open(f'/proc/{p}/environ', 'rb').read())\n        except OSError as e:\n"
    "            print(p, e)\nEOF",
    "python3 -c 'import os; os.setuid(0)'",
    "python3 -c 'import ctypes; print(ctypes.CDLL(None).ptrace(16, 1, 0, 0))'",
    "sh -c 'echo $$ > /sys/fs/cgroup/pids/cgroup.procs'",
    "sh -c 'echo \"|/tmp/@M@\" > /proc/sys/kernel/core_pattern'",
    "sh -c 'echo h > /proc/sysrq-trigger'",
    "ip link set lo down",
    "ip addr add 10.250.0.1/32 dev lo",
    "hostname @M@",
    "date -s '2001-01-01'",
    "cat /dev/kmsg",
    "mount -t tmpfs none /mnt",
    "ls -la /run /var/lib/dtma /etc/dtma /root /home",
    "cat /proc/self/status",
    "python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"/run/dtma-sandbox.sock\")'",
    "python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"/var/run/docker.sock\"); print(1)'",
    "python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"\\0/org/freedesktop/systemd1/notify\"); "
    "s.send(b\"STOPPING=1\")'",
    "curl -s -X POST http://127.0.0.1:@PORT@/restart",
    "curl -s -X POST -H 'Authorization: Bearer x' http://127.0.0.1:@PORT@/ssh/execute -d '{}'",
    "systemctl stop dtma",
    "systemctl kill -s KILL dtma",
    "systemctl start @M@",
]

# API attacks: (route, override). The container's command tries to write the host's /tmp/@M@ through a bind of /tmp.
TOUCH = ["sh", "-c", "touch /h/@M@ /h/tmp/@M@ 2>/dev/null; sleep @S@"]
OVERRIDES = [
    {"HostConfig": None, "Binds": ["/tmp:/h"], "Cmd": TOUCH},
    {"hostconfig": {"binds": ["/tmp:/h"]}, "Cmd": TOUCH},
    {"HoſtConfig": {"Binds": ["/tmp:/h"]}, "Cmd": TOUCH},
    {"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/h"}]}, "Cmd": TOUCH},
    {"HostConfig": {"Mounts": [{"Type": "volume", "Source": "@M@", "Target": "/h", "VolumeOptions": {
        "DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/tmp"}}}}]}, "Cmd": TOUCH},
    {"HostConfig": None, "Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/h"}], "Cmd": TOUCH},
    {"HostConfig": {"Privileged": True}, "Cmd": TOUCH},
    {"HostConfig": None, "Privileged": True, "Cmd": TOUCH},
    {"HostConfig": {"CapAdd": ["SYS_ADMIN"]}, "Cmd": TOUCH},
    {"HostConfig": None, "CapAdd": ["ALL"], "Cmd": TOUCH},
    {"HostConfig": {"Devices": [{"PathOnHost": "/dev/kmsg", "PathInContainer": "/dev/kmsg",
                                 "CgroupPermissions": "rwm"}]}, "Cmd": TOUCH},
    {"HostConfig": {"PidMode": "host"}, "Cmd": TOUCH},
    {"HostConfig": None, "PidMode": "host", "Cmd": TOUCH},
    {"HostConfig": {"NetworkMode": "container:@DROPLET@"}, "Cmd": TOUCH},
    {"HostConfig": None, "NetworkMode": "host", "Cmd": TOUCH},
    {"HostConfig": {"SecurityOpt": ["seccomp:unconfined"]}, "Cmd": TOUCH},
    {"HostConfig": {"SecurityOpt": ["apparmor=unconfined", "systempaths=unconfined"]}, "Cmd": TOUCH},
    {"HostConfig": {"Runtime": "runc"}, "Cmd": TOUCH},
    {"HostConfig": {"CgroupParent": "/"}, "Cmd": TOUCH},
    {"HostConfig": {"LogConfig": {"Type": "syslog", "Config": {"syslog-address": "udp://127.0.0.1:514"}}}, "Cmd": TOUCH},
    {"HostConfig": {"VolumesFrom": ["@DROPLET@"]}, "Cmd": TOUCH},
    {"HostConfig": {"UsernsMode": "host", "IpcMode": "host"}, "Cmd": TOUCH},
    {"HostConfig": {"Binds": ["/tmp:/h"], "binds": []}, "Cmd": TOUCH},
    {"HostConfig": {"Sysctls": {"kernel.core_pattern": "|/tmp/@M@"}}, "Cmd": TOUCH},
]
API_ROUTES = ["/tools", "/tools/validate", "/mcp/groups", "/mcp/validate"]


def build(session: str) -> list[dict]:
    """The attacks with their ids (stable order) and markers."""
    out: list[dict] = []

    def add(cls, command=None, timeout_ms=4000, route=None, override=None, oi=None):
        n = 100 + len(out)
        out.append({"id": n, "cls": cls, "command": command, "timeout_ms": timeout_ms, "route": route,
                    "override": override, "oi": oi, "marker": f"pwned-{session}-{n}", "sleep": f"987{n}"})

    for c in PARSER:
        add("parser", c)
    for c in INDIRECT:
        add("indirect", c)
    for c in PLANTED:
        add("planted", c)
    for c in PATHS:
        add("paths", c)
    for c, t in ESCAPE:
        add("escape_pgroup", c, t)
    for c in DOCKER_CLI:
        add("docker_cli", c, 15000)
    for c in SECRETS:
        add("secrets", c)
    for c in WRITE:
        add("write_outside", c)
    for c in DOCKER_FILTER:
        add("docker_filter", c, 15000)
    for c in SANDBOX:
        add("sandbox", c, 8000)
    for route in API_ROUTES:
        for i, o in enumerate(OVERRIDES):
            add("api_override", route=route, override=o, oi=i)
    for c in SIGNAL:
        add("signal_agent", c)
    for c, t in RESOURCES:
        add("resources", c, t)
    return out

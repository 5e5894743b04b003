#!/bin/sh
# vu-agent: the command agent on the guest's serial console (stdin/stdout = /dev/ttyS0).
# Protocol (host side: test/helpers/guest-agent.ts):
#   agent -> host  "__VU_READY__"                      once, when it accepts commands
#   host  -> agent one line: a shell command           (the n-th line sent is command n, from 1)
#   agent -> host  "__VU_BEGIN__ <n>", the command's stdout+stderr, "\n__VU_DONE__ <exit code>"
# The newline before __VU_DONE__ is always added by the agent, so the host strips exactly one.
# Commands run with stdin from /dev/null so that they cannot swallow the next command lines.

stty -echo -onlcr 2>/dev/null
n=0
echo "__VU_READY__"
while IFS= read -r line; do
  n=$((n + 1))
  echo "__VU_BEGIN__ $n"
  sh -c "$line" </dev/null 2>&1
  printf '\n__VU_DONE__ %d\n' "$?"
done

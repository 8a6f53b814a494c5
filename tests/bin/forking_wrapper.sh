#!/usr/bin/env bash
# A wrapper like the ones users write around llama-server (llama-swap #804): it runs the
# command in the background WITHOUT exec, keeps stdout/stderr open, and waits. Signalling only
# this shell's PID leaves the server running, so a supervisor must kill the process group.
echo "wrapper: pid $$ starting: $*" >&2
"$@" &
child=$!
echo "wrapper: child pid $child" >&2
wait "$child"
status=$?
echo "wrapper: child exited $status" >&2
exit "$status"

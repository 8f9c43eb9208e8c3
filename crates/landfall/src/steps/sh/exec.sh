# A command run on the host by a person (`exec`, `run`).

# landfall_exec lf_dir lf_input lf_logs lf_start lf_end CMD...: runs the
# command CMD (its words) from lf_dir, or from the home directory when
# lf_dir is empty, with its output and errors on stdout as they come and,
# with lf_input=1, the script's own standard input as its standard input
# (landfall gives the script as the shell's command then, and streams the
# input), else nothing; with lf_input=t, on the terminal it was given, as
# it is. Before it runs, lf_start (one line of JSON: who runs what, where)
# is appended to the log of each path in lf_logs (one a line), so that a
# command that ends this shell (kill -9 $PPID, kill 0) is on record all
# the same; a log that cannot be written to refuses the command, which
# does not run. Once it ended, an entry of the host's time, lf_end (the
# fields of the command's entry but those two) and its exit status is
# appended there. Exits with the command's status.
landfall_exec() {
  dir=$lf_dir input=$lf_input logs=$lf_logs start=$lf_start end=$lf_end
  if [ -n "$dir" ]; then
    cd "$dir" 2>/dev/null || {
      printf 'landfall: %s is not there (has it been deployed?)\n' "$dir" >&2
      exit 70
    }
  else
    cd 2>/dev/null || cd /
  fi
  unlogged=$(printf '%s\n' "$logs" | while IFS= read -r p; do
    [ -z "$p" ] || [ ! -d "$p/.landfall" ] || landfall_log "$p" "$start"
  done)
  if [ -n "$unlogged" ]; then
    printf '%s\n' "$unlogged" | while IFS="$(printf '\t')" read -r _ log; do
      printf 'landfall: cannot record the command in %s (a full disk, or a link): it did not run\n' "$log" >&2
    done
    exit 70
  fi
  if [ "$input" = t ]; then
    (trap - HUP PIPE INT && exec "$@")
  elif [ "$input" = 1 ]; then
    (trap - HUP PIPE && exec "$@") 2>&1
  else
    (trap - HUP PIPE && exec "$@") </dev/null 2>&1
  fi
  status=$?
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
  printf '%s\n' "$logs" | while IFS= read -r p; do
    [ -z "$p" ] || [ ! -d "$p/.landfall" ] || landfall_log "$p" "{\"time\":\"$now\",$end,\"status\":$status}" >/dev/null
  done
  exit "$status"
}

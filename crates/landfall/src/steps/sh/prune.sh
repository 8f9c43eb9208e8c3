# What is no longer needed: releases beyond those kept, and the paths
# of artifacts the model no longer deploys (orphans).

# landfall_orphans lf_project lf_env KNOWN...: reports each path of the
# registry that provably holds releases of lf_project (NAME:ID) for
# environment lf_env and has nothing to do with KNOWN (the paths the model
# deploys to on this host): `orphan`, the path, its artifact, its current
# release, and its service (`MANAGER NAME`). A path is compared by what it
# is on disk: one that is, holds or lies in a path of KNOWN (each
# resolved, links followed), that is not written in its own canonical form
# (a link, `.`, `..` or an empty component in it), or whose record names
# another project (or this one's name without its id) is none of this
# run's to remove.
landfall_orphans() {
  project=$lf_project env=$lf_env
  r=$(landfall_registry)
  [ -f "$r" ] || return 0
  known=
  for k in "$@"; do
    known="$known$(landfall_canonical "$k" || printf '%s' "$k")
"
  done
  sort -u "$r" | while IFS= read -r p; do
    [ -n "$p" ] && [ -d "$p" ] || continue
    canon=$(landfall_canonical "$p") && [ "$canon" = "$p" ] || continue
    printf '%s' "$known" | while IFS= read -r k; do
      case $canon/ in "$k"/*) exit 1 ;; esac
      case $k/ in "$canon"/*) exit 1 ;; esac
    done || continue
    f="$p/.landfall/artifact"
    [ -f "$f" ] && [ ! -L "$f" ] && [ ! -L "$p/.landfall" ] || continue
    o=$(head -n 1 "$f")
    case $o in "$project"/*@"$env") ;; *) continue ;; esac
    a=${o#"$project"/}
    landfall_current "$p"
    printf 'orphan\t%s\t%s\t%s\t%s\n' "$p" "${a%@*}" "${c##*/}" "$(landfall_service_of "$p/current")"
  done
}

# landfall_prune lf_path lf_owner lf_name: removes the orphan lf_path,
# which must hold lf_name's releases: under its lock (taken for lf_owner),
# stops its service (only if the definition installed is still the one
# lf_path installed: another path may run a service of that name now),
# removes the directory and drops it from the registry. Exits 3 or 4 as
# landfall_lock does.
landfall_prune() {
  p=$lf_path
  if [ ! -e "$p" ] && [ ! -L "$p" ]; then
    landfall_unregister "$p"
    printf 'pruned\t%s\n' "$p"
    return 0
  fi
  # Only a path written as it is on disk is removed: through a link, the
  # directory removed would be another than the one whose record was read.
  if [ "$(landfall_canonical "$p")" != "$p" ]; then
    landfall_fail "$p is not a directory written in its own canonical form (a link, or . or .. in it): not removed"
  fi
  landfall_take_lock "$p" "$lf_owner" 0 "$lf_name"
  landfall_steps "$p"
  if landfall_recorded "$p/current" 2>/dev/null && [ -n "$service_manager" ]; then
    if landfall_installed_here "$p"; then
      landfall_service_remove "$p" "$service_manager" "$(landfall_service_id)" || landfall_fail "cannot stop the service $service_name"
    else
      printf 'kept-service\t%s\n' "$service_name"
    fi
  fi
  rm -rf "$p" || landfall_fail "cannot remove $p"
  landfall_unregister "$p"
  printf 'pruned\t%s\n' "$p"
}

# landfall_installed_here PATH: whether the definition of the service
# PATH's current release recorded is, where its manager reads it, the one
# PATH installed (see landfall_install); under `--local`, whether its
# process (or one of its instances, with `overlap`) runs from PATH.
landfall_installed_here() {
  [ -n "$service_manager" ] || return 1
  if [ -n "${LANDFALL_LOCAL:-}" ]; then
    if [ "$service_overlap" = 1 ]; then
      landfall_process_pid "$1" blue >/dev/null || landfall_process_pid "$1" green >/dev/null
    else
      landfall_process_pid "$1" >/dev/null
    fi
    return
  fi
  if [ "$service_manager.$service_overlap" = supervisor.1 ]; then
    # A program per slot (see landfall_definition_path).
    for definition_slot in blue green; do
      [ -f "$1/.landfall/service.unit@$definition_slot" ] &&
        cmp -s "$(landfall_definition_path unit)" "$1/.landfall/service.unit@$definition_slot" &&
        return 0
    done
    return 1
  fi
  [ -f "$1/.landfall/service.unit" ] &&
    cmp -s "$(landfall_definition_path unit)" "$1/.landfall/service.unit"
}

# landfall_cleanup lf_path lf_keep lf_previous: removes releases beyond
# the lf_keep most recently activated ones, never the current one nor
# lf_previous.
landfall_cleanup() {
  p=$lf_path keep=$lf_keep prev=$lf_previous
  landfall_current "$p"
  n=0
  landfall_releases "$p/releases" | while IFS= read -r r; do
    n=$((n + 1))
    if [ "$n" -le "$keep" ] || [ "$r" = "$c" ] || [ "$r" = "$prev" ]; then
      continue
    fi
    rm -rf "$p/releases/$r" "$p/.landfall/manifests/$r"
    printf 'removed\t%s\n' "$r"
  done
}

# Making a release: claiming its path, the upload (pushed, checked out,
# pulled from a store, or a copy of the current release), its build and
# its finalization; reading a release's manifest and files.

# landfall_claim lf_index lf_path lf_release lf_owner lf_break_lock lf_git
# lf_name lf_from lf_top lf_gone lf_resume SHARED...: unless lf_release is
# current and unlocked (an empty one never is), takes the deploy lock of
# lf_path (for lf_owner, of artifact lf_name, see landfall_try_lock; a lock
# kept by the run holding the token lf_resume while its rollout waits for
# promotion is taken over, see landfall_adopt) and prepares the
# directories a release needs (landfall_prepare, with SHARED; the bare
# repository too with lf_git=1). Reports, for the path numbered lf_index,
# `held` with the current release as read under the lock (and `created`
# with the outermost directory it made, for a path that did not exist:
# what to remove if the run goes no further), `busy` with the holder of
# the lock, or `unclaimed` with the reason the path could not be locked or
# its directories made (no lock, and nothing it made, is then left). With
# the lock held, lf_from current and lf_release not on the host, the
# upload of lf_release is made a copy of lf_from, which has lf_top entries
# at its top, without the paths lf_gone (landfall_derive). It never exits:
# the other paths of the host go on.
landfall_claim() {
  i=$lf_index p=$lf_path id=$lf_release owner=$lf_owner brk=$lf_break_lock
  git=$lf_git name=$lf_name from=$lf_from top=$lf_top gone=$lf_gone
  resume=$lf_resume
  landfall_current "$p"
  if [ -n "$id" ] && [ "${c##*/}" = "$id" ] && [ ! -f "$p/.landfall/lock" ]; then
    # Nothing to do here, unless the path is another's.
    if err=$(landfall_foreign "$p" "$name" 2>&1); then
      printf 'unclaimed\t%s\t%s\n' "$i" "$(printf '%s' "$err" | tr '\n' ' ')"
    else
      landfall_register "$p"
    fi
    return 0
  fi
  new=$(landfall_missing "$p")
  # The lock kept by the waiting rollout this run resumes is taken over.
  if [ -n "$resume" ] && landfall_adopt "$p" "$owner" "$resume" "$name"; then
    :
  elif ! err=$( (landfall_try_lock "$p" "$owner" "$brk" "$name") 2>&1); then
    if [ -f "$p/.landfall/lock" ]; then
      printf 'busy\t%s\t%s\n' "$i" "$(head -n 1 "$p/.landfall/lock" 2>/dev/null)"
    else
      [ -z "$new" ] || rm -rf "$new"
      printf 'unclaimed\t%s\t%s\n' "$i" "$(printf '%s' "$err" | tr '\n' ' ')"
    fi
    return 0
  fi
  # landfall_prepare and landfall_git_init read lf_path, and the list.
  if ! err=$( (landfall_prepare "$@" >/dev/null && if [ "$git" = 1 ]; then landfall_git_init; fi) 2>&1); then
    rm -f "$p/.landfall/lock"
    [ -z "$new" ] || rm -rf "$new"
    printf 'unclaimed\t%s\t%s\n' "$i" "$(printf '%s' "$err" | tr '\n' ' ')"
    return 0
  fi
  landfall_current "$p"
  printf 'held\t%s\t%s\n' "$i" "${c##*/}"
  [ -z "$new" ] || printf 'created\t%s\t%s\n' "$i" "$new"
  if [ -n "$from" ] && [ -n "$id" ] && [ "${c##*/}" = "$from" ] && [ ! -d "$p/releases/$id" ]; then
    landfall_derive "$i" "$p" "$id" "$from" "$top" "$gone"
  fi
}

# landfall_prepare lf_path SHARED...: the directories a release needs;
# reports the current release as `prepared`.
landfall_prepare() {
  p=$lf_path
  mkdir -p "$p/releases" "$p/shared" || landfall_fail "cannot create $p/releases"
  # An upload goes into a directory landfall makes, never through a link.
  for f in "$p"/releases/*.partial; do
    if [ -L "$f" ]; then
      rm -f "$f" || landfall_fail "cannot remove the link $f"
    fi
  done
  for d in "$@"; do
    mkdir -p "$p/shared/$d" || landfall_fail "cannot create $p/shared/$d"
  done
  landfall_current "$p"
  printf 'prepared\t%s\n' "${c##*/}"
}

# landfall_git_init lf_path: the bare repository that git artifacts are
# pushed to, created on first use.
landfall_git_init() {
  r="$lf_path/.landfall/repo.git"
  [ -d "$r" ] && return 0
  command -v git >/dev/null || landfall_fail "git is not installed on this host"
  git init --quiet --bare "$r.new" && mv "$r.new" "$r" || landfall_fail "cannot create $r"
}

# landfall_checkout lf_path lf_release lf_tree: checks a tree of the
# pushed commit out into the release's upload directory, with a private
# index.
landfall_checkout() {
  part="$lf_path/releases/$lf_release.partial"
  rm -rf "$part" && mkdir -p "$part" || landfall_fail "cannot create $part"
  (
    GIT_DIR="$lf_path/.landfall/repo.git" GIT_WORK_TREE="$part" GIT_INDEX_FILE="$lf_path/.landfall/index.$lf_release"
    export GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
    git read-tree "$lf_tree" && git checkout-index --all --force
    status=$?
    rm -f "$GIT_INDEX_FILE"
    exit $status
  ) || landfall_fail "cannot check out tree $lf_tree into $part"
}

# landfall_put lf_dir lf_name lf_mode: writes a file of a release from
# base64 on standard input (a here-document), replacing whatever is at
# lf_name.
landfall_put() {
  f="$lf_dir/$lf_name"
  mkdir -p "${f%/*}" && rm -rf "$f" && (umask 077 && base64 -d >"$f") && chmod "$lf_mode" "$f" ||
    landfall_fail "cannot write $f"
}

# landfall_pull lf_path lf_release lf_current lf_seconds: makes the upload
# of lf_release from an object store, as the list on standard input (a
# here-document) says, one line per entry of the artifact:
#   file<TAB>MODE<TAB>SIZE<TAB>BLAKE3<TAB>SHA256<TAB>MTIME<TAB>URL<TAB>NAME
#   symlink<TAB>TARGET<TAB>NAME
# A file that lf_current's manifest lists with the same mode, size and
# blake3 is hard-linked from it, as rsync's --link-dest does, if nothing on
# its path changed since lf_current was made (as landfall_derive asks:
# nothing newer than its .landfall-release, written last), and one whose
# content this upload has already is linked from there; any other is
# fetched from URL (a presigned GET, which holds no `"` or `\`) with curl,
# at most lf_seconds each, into a temporary file, checked against its
# sha256, and only then given its mode and mtime (MTIME: UTC, as `touch -t`
# reads it) and its name. Any failure removes the upload. Reports
# `pulled FILES BYTES`: what was fetched.
landfall_pull() {
  p=$lf_path id=$lf_release cur=$lf_current limit=$lf_seconds
  part="$p/releases/$id.partial"
  command -v curl >/dev/null || landfall_fail "curl is not installed on this host: a deploy from a store needs it"
  command -v sha256sum >/dev/null || landfall_fail "sha256sum (coreutils) is not installed on this host"
  rm -rf "$part" && mkdir -p "$part" || landfall_fail "cannot create $part"
  have='' changed="$part/.landfall-changed" was="$p/releases/$cur"
  if [ -n "$cur" ] && [ -f "$was/.landfall-manifest" ] && [ ! -L "$was" ] &&
    [ -f "$was/.landfall-release" ] && [ ! -L "$was/.landfall-release" ] &&
    find "$was" -mindepth 1 -newer "$was/.landfall-release" >"$changed" 2>/dev/null; then
    have="$was/.landfall-manifest"
  fi
  # Each line gets what to do first: `old NAME` (a file of lf_current that
  # nothing on its path changed since it was made), `dup NAME` (a file of
  # this upload), `get -`, or `link -`.
  plan=$(awk -v have="$have" -v changed="$changed" -v prefix="$was/" 'BEGIN {
      FS = "\t"
      if (have != "") {
        while ((getline line < changed) > 0) touched[substr(line, length(prefix) + 1)] = 1
        while ((getline line < have) > 0) {
          n = split(line, f, "\t")
          if (f[1] != "file" || n < 5) continue
          # A file, or a directory above it, that changed is not reused.
          k = split(f[5], part, "/")
          path = ""
          same = 1
          for (i = 1; i <= k; i++) {
            path = path (i > 1 ? "/" : "") part[i]
            if (path in touched) same = 0
          }
          if (same) old[f[2] "\t" f[3] "\t" f[4]] = f[5]
        }
      }
    }
    $1 == "file" {
      key = $2 "\t" $3 "\t" $4
      if (key in old) print "old\t" old[key] "\t" $0
      else if (key in got) print "dup\t" got[key] "\t" $0
      else print "get\t-\t" $0
      if (!(key in got)) got[key] = $8
      next
    }
    $1 == "symlink" { print "link\t-\t" $0 }') || {
    rm -rf "$part"
    landfall_fail "cannot read the list of objects for $id"
  }
  rm -f "$changed"
  tab=$(printf '\t')
  files=0 bytes=0
  # shellcheck disable=SC2034 # The kind and the blake3 were for awk.
  while IFS=$tab read -r what from kind mode size blake sha mtime url name; do
    case $what in
      link)
        # A symlink's line is `symlink TARGET NAME`: its target is read
        # into `mode` and its name into `size`.
        f="$part/$size"
        mkdir -p "${f%/*}" && ln -s "$mode" "$f" || {
          rm -rf "$part"
          landfall_fail "cannot link $f"
        }
        continue
        ;;
      old) src="$p/releases/$cur/$from" ;;
      dup) src="$part/$from" ;;
      get) src= ;;
      *) continue ;;
    esac
    f="$part/$name"
    mkdir -p "${f%/*}" || {
      rm -rf "$part"
      landfall_fail "cannot create the directory of $f"
    }
    if [ -n "$src" ] && [ -f "$src" ] && [ ! -L "$src" ] && ln "$src" "$f" 2>/dev/null; then
      continue
    fi
    tmp="$part/.landfall-pull"
    # The URL reaches curl on its standard input, not its command line,
    # where any user of the host could read it.
    if ! printf 'url = "%s"\n' "$url" |
      curl -fsS --retry 3 --connect-timeout 10 --max-time "$limit" -K - -o "$tmp"; then
      rm -rf "$part"
      landfall_fail "cannot fetch $name (sha256 $sha) from the store"
    fi
    sum=$(sha256sum "$tmp") && sum=${sum%% *} || sum=
    if [ "$sum" != "$sha" ]; then
      rm -rf "$part"
      landfall_fail "sha256 mismatch: $name fetched from the store has sha256 $sum, not $sha; the release is not made"
    fi
    chmod "$mode" "$tmp" && TZ=UTC0 touch -m -t "$mtime" "$tmp" && mv -f "$tmp" "$f" || {
      rm -rf "$part"
      landfall_fail "cannot write $f"
    }
    files=$((files + 1))
    bytes=$((bytes + size))
  done <<EOF
$plan
EOF
  printf 'pulled\t%s\t%s\n' "$files" "$bytes"
}

# landfall_derive I PATH RELEASE FROM TOP GONE: makes the upload of RELEASE
# a copy of the release FROM, every file a hard link (`cp -al`), without
# the paths of GONE (one a line, as FROM's manifest names them), for a
# push that then sends only what differs. FROM must be a complete release that
# nothing changed since it was made: TOP entries at its top, as its manifest
# says (with .landfall-manifest and .landfall-release), and nothing below
# newer than its .landfall-release, written last (a file's mtime comes from
# its content, and is before 2010; an edit, or a file added or removed,
# makes something newer; the release's own directory is touched when it is
# activated, and is not compared). Reports
# `derived I`, or `underived I` and why: then there is no upload, and the
# push sends everything. A file of the copy is never written in place: what
# changed is replaced, so FROM stays as it is.
landfall_derive() {
  old="$2/releases/$4" part="$2/releases/$3.partial"
  rm -rf "$part" || landfall_fail "cannot remove $part"
  if [ -L "$old" ] || [ ! -d "$old" ] || [ ! -f "$old/.landfall-release" ] || [ -L "$old/.landfall-release" ]; then
    printf 'underived\t%s\t%s is no complete release\n' "$1" "$4"
    return 0
  fi
  n=0
  for f in "$old"/* "$old"/.[!.]* "$old"/..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then n=$((n + 1)); fi
  done
  if [ "$n" != "$5" ]; then
    printf 'underived\t%s\t%s has %s entries at its top, not %s\n' "$1" "$4" "$n" "$5"
    return 0
  fi
  if ! newer=$(find "$old" -mindepth 1 -newer "$old/.landfall-release" 2>/dev/null); then
    printf 'underived\t%s\t%s cannot be read\n' "$1" "$4"
    return 0
  fi
  if [ -n "$newer" ]; then
    newer=$(printf '%s\n' "$newer" | head -n 1)
    printf 'underived\t%s\t%s changed after the release was made\n' "$1" "${newer#"$2/releases/"}"
    return 0
  fi
  if ! cp -al "$old" "$part" 2>/dev/null || ! rm -f "$part/.landfall-release" ||
    ! landfall_remove_below "$part" "$6"; then
    rm -rf "$part"
    printf 'underived\t%s\tcannot copy %s as links\n' "$1" "$4"
    return 0
  fi
  printf 'derived\t%s\n' "$1"
}

# landfall_remove_below DIR PATHS: removes each of PATHS (relative to DIR,
# one a line), with what is in it, never through a link: a path with a
# link, or anything but a directory, above it in DIR is left alone, as is
# one with a `.` or `..` component.
landfall_remove_below() {
  printf '%s\n' "$2" | while IFS= read -r f; do
    case /$f/ in // | */../* | */./* | *//*) continue ;; esac
    d=$1 rest=$f
    while :; do
      case $rest in */*) ;; *) break ;; esac
      d="$d/${rest%%/*}" rest=${rest#*/}
      [ ! -L "$d" ] && [ -d "$d" ] || continue 2
    done
    rm -rf "${d:?}/$rest" || return 1
  done
}

# landfall_link lf_dir lf_name lf_target: a symlink of a release,
# replacing whatever is at lf_name.
landfall_link() {
  f="$lf_dir/$lf_name"
  mkdir -p "${f%/*}" && rm -rf "$f" && ln -s "$lf_target" "$f" || landfall_fail "cannot link $f"
}

# landfall_build lf_path lf_release lf_previous: runs the build hook the
# upload of lf_release recorded, in the upload directory; if it fails, the
# upload is removed.
landfall_build() {
  landfall_steps "$lf_path"
  part="$lf_path/releases/$lf_release.partial"
  landfall_recorded "$part" || landfall_fail "the upload of $lf_release has no .landfall-activation"
  export LANDFALL_PATH="$lf_path" LANDFALL_RELEASE="$lf_release" LANDFALL_PREVIOUS="$lf_previous"
  [ -n "$hook_build" ] || return 0
  if ! landfall_hook build "$part" "$hook_build" "$hook_timeout"; then
    rm -rf "$part"
    printf 'failed\tbuild\n'
    exit 12
  fi
}

# landfall_finalize lf_path lf_release lf_provenance: the upload is
# complete (its manifest and activation came with it): records where it
# comes from, lf_provenance, in .landfall-release (one line of JSON),
# readable by the deploy account alone (it names who deployed, and the
# values given with --var), and gives it its name. A release already
# complete keeps the provenance it was made with.
landfall_finalize() {
  if [ -d "$lf_path/releases/$lf_release" ]; then
    rm -rf "$lf_path/releases/$lf_release.partial"
  else
    # Written again once the release has its name, which may have touched
    # its directory: nothing in the release is then newer than this file
    # (see landfall_derive). What the upload brought by that name goes
    # first, so that nothing is written through a link.
    rm -f "$lf_path/releases/$lf_release.partial/.landfall-release" &&
      (umask 077 && printf '%s\n' "$lf_provenance" >"$lf_path/releases/$lf_release.partial/.landfall-release") &&
      mv "$lf_path/releases/$lf_release.partial" "$lf_path/releases/$lf_release" &&
      printf '%s\n' "$lf_provenance" >"$lf_path/releases/$lf_release/.landfall-release" || landfall_fail "cannot rename $lf_path/releases/$lf_release.partial"
  fi
}

# landfall_discard lf_path lf_release: removes what was uploaded of a
# release that will not be activated.
landfall_discard() {
  rm -rf "$lf_path/releases/$lf_release.partial"
}

# landfall_manifest lf_path lf_release: prints the manifest of a release,
# if it has one (releases made before manifests moved into the release
# directory have theirs under .landfall/manifests).
landfall_manifest() {
  if [ -f "$lf_path/releases/$lf_release/.landfall-manifest" ]; then
    cat "$lf_path/releases/$lf_release/.landfall-manifest"
  elif [ -f "$lf_path/.landfall/manifests/$lf_release" ]; then
    cat "$lf_path/.landfall/manifests/$lf_release"
  fi
}

# landfall_files lf_path lf_release lf_max FILE...: prints each regular
# file of a release no bigger than lf_max bytes as a line
# `file<TAB>NAME<TAB>SIZE` and its bytes, and any other as `skip<TAB>NAME`.
landfall_files() {
  p=$lf_path id=$lf_release max=$lf_max
  for f in "$@"; do
    file="$p/releases/$id/$f"
    if [ -f "$file" ] && [ ! -L "$file" ]; then
      size=$(wc -c <"$file" | tr -d ' ')
      if [ "$size" -le "$max" ]; then
        printf 'file\t%s\t%s\n' "$f" "$size"
        cat "$file"
        continue
      fi
    fi
    printf 'skip\t%s\n' "$f"
  done
}

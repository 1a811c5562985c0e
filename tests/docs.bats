#!/usr/bin/env bats
# docs.bats: the manuals and etc/srvexample.conf agree with the binary.
#
# Uses only SRVEXAMPLE, top_srcdir and top_builddir (exported by make check),
# so it also runs by hand:
#   SRVEXAMPLE=src/srvexample top_srcdir=. top_builddir=. bats tests/docs.bats

setup() {
	top_srcdir=${top_srcdir:-$BATS_TEST_DIRNAME/..}
	top_builddir=${top_builddir:-$top_srcdir}
	SRVEXAMPLE=${SRVEXAMPLE:-$top_builddir/src/srvexample}
	tmpdir=${BATS_TEST_TMPDIR:-$BATS_TMPDIR}
	if [ ! -x "$SRVEXAMPLE" ]; then
		echo "no srvexample binary at $SRVEXAMPLE: build it or set SRVEXAMPLE" >&2
		return 1
	fi
}

teardown() {
	if [ -n "${shared_tmp:-}" ]; then
		rm -f "$shared_tmp"
	fi
}

# Skip the test when mandoc is not installed.
require_mandoc() {
	command -v mandoc >/dev/null || skip "mandoc is not installed"
}

# Run srvexample -nv -f FILE [ARGS...] and print the effective configuration.
# As root, -n also checks that the user srvexample exists, which it need not
# (a fresh machine has none): the defaults must not depend on who checks them,
# so root runs it as nobody.  The binary and FILE are handed over as open
# descriptors (the binary as fd 3 for exec, FILE as stdin), so that nobody need
# not be able to reach them: a checkout under /root is private.
nv_config() {
	local conf=$1 out err status
	shift
	err=$tmpdir/nv.err
	if [ "$(id -u)" = 0 ]; then
		out=$(setpriv --reuid=nobody --regid="$(id -g nobody)" \
		    --clear-groups /dev/fd/3 -nv -f /dev/stdin "$@" \
		    3<"$SRVEXAMPLE" <"$conf" 2>"$err")
	else
		out=$("$SRVEXAMPLE" -nv -f "$conf" "$@" 2>"$err")
	fi
	status=$?
	if [ "$status" -ne 0 ] || [ -z "$out" ]; then
		echo "srvexample -nv -f $conf $*: exit $status, stderr:" >&2
		cat "$err" >&2
		return 1
	fi
	printf '%s\n' "$out"
}

# Print the keywords srvexample knows, one per line: those -nv prints, with
# the ones it prints only when set (allow, deny, group, proxy-from) set.
known_keywords() {
	nv_config /dev/null -o allow=192.0.2.0/24 -o deny=198.51.100.0/24 \
	    -o proxy-from=192.0.2.1 \
	    -o group="$(id -gn nobody 2>/dev/null || echo nogroup)" |
	    awk '{ print $1 }' | sort -u
}

# Print the path of the generated manual $1 (srvexample.8 or
# srvexample.conf.5): the one make built, or else a copy made from the .in
# with the paths the binary reports where it reports them.
man_page() {
	local name=$1 runstatedir version
	if [ -f "$top_builddir/man/$name" ]; then
		echo "$top_builddir/man/$name"
		return 0
	fi
	runstatedir=$(nv_config /dev/null |
	    sed -n 's,^pidfile \(.*\)/srvexample/srvexample\.pid$,\1,p')
	version=${SRVEXAMPLE_VERSION:-$("$SRVEXAMPLE" -V | sed 's/^srvexample //')}
	sed -e "s,@sbindir@,/usr/local/sbin,g" \
	    -e "s,@sysconfdir@,/usr/local/etc,g" \
	    -e "s,@runstatedir@,${runstatedir:-/run},g" \
	    -e "s,@PACKAGE_VERSION@,$version,g" \
	    "$top_srcdir/man/$name.in" >"$tmpdir/$name" || return 1
	echo "$tmpdir/$name"
}

# Print the mdoc source of the .It Ic $2 entry of manual $1, up to the next
# .It or .El.
keyword_entry() {
	awk -v kw="$2" '
	    $1 == ".It" && $2 == "Ic" && $3 == kw { on = 1; print; next }
	    on && ($1 == ".It" || $1 == ".El") { exit }
	    on { print }' "$1"
}

# Lint manual $1 with mandoc; any warning or error fails.
lint_page() {
	local page out
	page=$(man_page "$1") || return 1
	run mandoc -Tlint -Wwarning "$page"
	if [ "$status" -ne 0 ] || [ -n "$output" ]; then
		echo "mandoc -Tlint -Wwarning $page: exit $status" >&2
		echo "$output" >&2
		return 1
	fi
	out=$(grep -n '@[A-Za-z_]*@' "$page") || true
	if [ -n "$out" ]; then
		echo "$page: unsubstituted placeholders:" >&2
		echo "$out" >&2
		return 1
	fi
}

@test "srvexample.8 is clean under mandoc -Tlint -Wwarning" {
	require_mandoc
	lint_page srvexample.8
}

@test "srvexample.conf.5 is clean under mandoc -Tlint -Wwarning" {
	require_mandoc
	lint_page srvexample.conf.5
}

@test "srvexample -h prints the SYNOPSIS of srvexample.8" {
	require_mandoc
	local page usage synopsis
	page=$(man_page srvexample.8)
	run "$SRVEXAMPLE" -h
	[ "$status" -eq 0 ]
	usage=$(printf '%s\n' "${lines[0]}" | tr -s ' \t' '  ' | sed 's/ *$//')
	synopsis=$(mandoc -Tascii -O width=500 "$page" | sed 's/.\x08//g' |
	    awk '/^SYNOPSIS/ { getline; print; exit }' |
	    tr -s ' \t' '  ' | sed 's/^ *//; s/ *$//')
	echo "usage:    $usage"
	echo "SYNOPSIS: $synopsis"
	[ -n "$synopsis" ]
	[ "$usage" = "usage: $synopsis" ]
}

@test "every option of the usage line is documented in srvexample.8 and no other" {
	local page usage letters c documented
	page=$(man_page srvexample.8)
	run "$SRVEXAMPLE" -h
	[ "$status" -eq 0 ]
	usage=${lines[0]}
	letters=$(printf '%s\n' "$usage" | grep -o '\[-[A-Za-z]*' | sed 's/^.-//' |
	    fold -w1 | sort -u)
	[ -n "$letters" ]
	for c in $letters; do
		if ! grep -q "^\.It Fl $c\( \|$\)" "$page"; then
			echo "option -$c of \"$usage\" has no .It Fl $c in $page"
			return 1
		fi
	done
	documented=$(sed -n 's/^\.It Fl \([A-Za-z]\)\( .*\)*$/\1/p' "$page" | sort -u)
	for c in $documented; do
		if ! printf '%s\n' "$letters" | grep -qx -- "$c"; then
			echo "$page documents -$c, which is not in \"$usage\""
			return 1
		fi
	done
}

@test "srvexample.conf.5 documents exactly the keywords srvexample knows" {
	local page known documented
	page=$(man_page srvexample.conf.5)
	known=$(known_keywords)
	documented=$(awk '$1 == ".It" && $2 == "Ic" { print $3 }' "$page" | sort -u)
	[ -n "$known" ]
	diff -u --label "keywords of srvexample -nv" --label "keywords in $page" \
	    <(echo "$known") <(echo "$documented")
}

@test "every keyword's default from srvexample -nv is in its srvexample.conf.5 entry" {
	local page config keyword value entry bad=0
	page=$(man_page srvexample.conf.5)
	config=$(nv_config /dev/null)
	while read -r keyword value; do
		entry=$(keyword_entry "$page" "$keyword")
		if [ -z "$entry" ]; then
			echo "$keyword: no .It Ic $keyword in $page"
			bad=1
			continue
		fi
		if ! printf '%s\n' "$entry" | grep -qi 'default'; then
			echo "$keyword: its entry does not state a default"
			bad=1
		fi
		# The group default is the user's group, whatever -nv resolves.
		if [ "$keyword" = group ]; then
			if ! printf '%s\n' "$entry" | grep -q 'primary group'; then
				echo "group: entry does not say the default is the user's primary group"
				bad=1
			fi
			continue
		fi
		if ! printf '%s\n' "$entry" | grep -Fqw -- "$value"; then
			echo "$keyword: default \"$value\" from -nv not in its entry:"
			printf '%s\n' "$entry" | sed 's/^/    /'
			bad=1
		fi
	done <<<"$config"
	[ "$bad" -eq 0 ]
}

@test "every #keyword value line of etc/srvexample.conf is the built-in default" {
	local conf config keyword value n=0 bad=0
	conf=$top_srcdir/etc/srvexample.conf
	config=$(nv_config /dev/null)
	while read -r keyword value; do
		n=$((n + 1))
		if ! printf '%s\n' "$config" | grep -q -- "^$keyword "; then
			echo "#$keyword $value: srvexample -nv prints no $keyword"
			bad=1
		elif ! printf '%s\n' "$config" | grep -Fqx -- "$keyword $value"; then
			echo "#$keyword $value: srvexample -nv prints" \
			    "$(printf '%s\n' "$config" | grep -- "^$keyword ")"
			bad=1
		fi
	done < <(sed -n 's/^#\([a-z][a-z0-9-]*[ 	]\)/\1/p' "$conf")
	[ "$n" -gt 0 ]
	[ "$bad" -eq 0 ]
}

@test "etc/srvexample.conf mentions every keyword, most with a #keyword default line" {
	local conf known keyword bad=0
	conf=$top_srcdir/etc/srvexample.conf
	known=$(known_keywords)
	[ -n "$known" ]
	for keyword in $known; do
		case $keyword in
		# System-dependent defaults and lists: explained in prose.
		group|pidfile|backlog|allow|deny|proxy-from)
			grep -qw -- "$keyword" "$conf" && continue ;;
		*)
			grep -q -- "^#${keyword}[ 	]" "$conf" && continue ;;
		esac
		echo "$conf: no line for $keyword"
		bad=1
	done
	[ "$bad" -eq 0 ]
}

@test "etc/srvexample.conf with its defaults uncommented gives the built-in configuration" {
	local builtin uncommented
	shared_tmp=$(mktemp /tmp/srvexample-docs.XXXXXX)
	chmod 644 "$shared_tmp"
	sed 's/^#\([a-z]\)/\1/' "$top_srcdir/etc/srvexample.conf" >"$shared_tmp"
	builtin=$(nv_config /dev/null)
	uncommented=$(nv_config "$shared_tmp")
	diff -u <(echo "$builtin") <(echo "$uncommented")
}

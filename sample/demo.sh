#!/usr/bin/env bash
# Build a store from the sample dispute in sample/ and export its dossier, as a user would.
#
#   EVIDENCE       the evidence command (default: evidence)
#   EVIDENCE_HOME  the demo's store (default: demo-home in the repository root); wiped first
#   OUTPUT         the dossier PDF (default: sample-dossier.pdf in the repository root)
#
# Relative EVIDENCE, EVIDENCE_HOME and OUTPUT given by you are read from the directory you
# run this in; the script itself works from the repository root, wherever it is called from.
#
#   EVIDENCE=.venv/bin/evidence bash sample/demo.sh
#
# Nothing in the sample should be quarantined: an import that exits with 3 fails the demo.
set -euo pipefail

caller_dir=$PWD
repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

absolute() { # a path given relative to the caller's directory, made absolute
    case $1 in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$caller_dir/$1" ;;
    esac
}

evidence_cmd=${EVIDENCE:-evidence}
if [[ $evidence_cmd == */* ]]; then
    evidence_cmd=$(absolute "$evidence_cmd")
fi
if ! command -v -- "$evidence_cmd" >/dev/null; then
    echo "demo: '$evidence_cmd' not found; set EVIDENCE, e.g. EVIDENCE=.venv/bin/evidence" >&2
    exit 1
fi

if [[ -n ${EVIDENCE_HOME:-} ]]; then
    EVIDENCE_HOME=$(absolute "$EVIDENCE_HOME")
else
    EVIDENCE_HOME=$repo_root/demo-home
fi
output=$(absolute "${OUTPUT:-$repo_root/sample-dossier.pdf}")
export EVIDENCE_HOME
# The demo's store is the SQLite file in its own home, and the sample's local times are
# Helsinki time, whatever the caller's environment says.
unset EVIDENCE_DATABASE_URL
export EVIDENCE_TIMEZONE=Europe/Helsinki

# Wipe the home, but only one this script made: never someone's real store.
marker=$EVIDENCE_HOME/.evidence-demo-home
if [[ -e $EVIDENCE_HOME && ! -e $marker ]] \
    && [[ -n $(ls -A -- "$EVIDENCE_HOME" 2>/dev/null || echo x) ]]; then
    echo "demo: $EVIDENCE_HOME exists and is not a demo home; not wiping it." >&2
    echo "demo: point EVIDENCE_HOME at a new directory (or remove it yourself)." >&2
    exit 1
fi
rm -rf -- "$EVIDENCE_HOME"
mkdir -p -m 700 -- "$EVIDENCE_HOME"
: >"$marker"

cd -- "$repo_root"

evidence() { # echo the command as a user would type it, run it, stop on any failure
    printf '\n$ evidence'
    printf ' %q' "$@"
    printf '\n'
    local status=0
    "$evidence_cmd" "$@" || status=$?
    if ((status == 3)); then
        echo "demo: 'evidence $1 ${2:-}' quarantined some sample input (exit 3): a bug" >&2
    elif ((status != 0)); then
        echo "demo: 'evidence $1 ${2:-}' failed (exit $status)" >&2
    fi
    if ((status != 0)); then
        exit "$status"
    fi
}

echo "demo: store in $EVIDENCE_HOME"

evidence init --company "Pohjolan Vesi Oy" --mail-domain pohjolanvesi.example
evidence customer add 200517 --name "Aino Laaksonen" \
    --email aino.laaksonen@example.com --phone "050 765 4321"

# Mail as saved from the server, then a later mbox export that repeats two of the
# messages (counted as duplicates) and holds one newer message.
evidence import mail sample/mail/*.eml
evidence import mail sample/mail/export.mbox

evidence import calls sample/pbx/Master.csv --format asterisk-cdr
evidence import calls sample/pbx/queue_log --format asterisk-queue-log
evidence import recordings sample/recordings

# The outage is in no file: the shift supervisor logged it when it was over.
evidence incident add --start "2026-03-10 08:40" --end "2026-03-10 11:05" \
    --title "Puhelinjärjestelmän häiriö: operaattorin runkoyhteys poikki" \
    --channel phone \
    --note "Operaattorin pilvirunko katkesi. Puhelut tulivat jonoon laskutus, mutta eivät ohjautuneet asiakaspalvelijoille; jonon jäsenet tauotettiin klo 8.47. Operaattori korjasi yhteyden klo 11.05." \
    --logged-by "Mikko Heinonen (vuoroesimies)" --logged-at "2026-03-10 11:20"

# The regulator's request arrives ten days later; legal staff open a case for it.
evidence case open KKV/1234/2026 --customer 200517 \
    --authority "Kilpailu- ja kuluttajavirasto (kuluttajaneuvonta)" \
    --received 2026-03-20 --deadline 2026-04-03
evidence case attach KKV/1234/2026 sample/letters/kkv-selvityspyynto.pdf \
    --title "Selvityspyyntö KKV/1234/2026" --date 2026-03-19

evidence timeline 200517
# --force: the demo makes its dossier again on every run (a real export is never replaced
# without it).
evidence export 200517 --case KKV/1234/2026 -o "$output" --force

echo
echo "demo: done; the dossier is $output"

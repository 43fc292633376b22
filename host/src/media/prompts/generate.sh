#!/usr/bin/env bash
# Regenerates the router's built-in prompts: espeak-ng (Debian package
# espeak-ng, voice en-us) speaks each text, sox (package sox) makes it 8 kHz,
# mono, 16-bit PCM WAV, the format tenants upload too. The WAV files are
# committed so building the router needs neither tool.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
say() {
  espeak-ng -v en-us -s 160 -w /tmp/prompt-$$.wav "$2"
  sox /tmp/prompt-$$.wav -r 8000 -c 1 -b 16 "$1.wav" norm -3 silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse
  rm -f /tmp/prompt-$$.wav
}
say enter-account "Please enter the account number, then hash."
say enter-pin "Please enter your PIN, then hash."
say logged-in-as "You are logged in as"
say logged-out "You are logged out."
say wrong-pin "Wrong PIN."
say not-hotdesk "This is not a hotdesk phone."
say locked "Too many wrong PINs. Please try again later."
say status-set "Your status is set."
say try-again "Please try again."
say goodbye "Goodbye."
n=0
for w in zero one two three four five six seven eight nine; do
  say "digit-$n" "$w"
  n=$((n + 1))
done

#!/usr/bin/env bash
# Write the book's generated parts anew, then build it: the recorded runs
# (book/src/runs/<machine>/<id>.html, replayed from tests/fixtures/recordings with colour)
# and the line ranges by which each lesson chapter cuts its story (lessons/<id>.md) around
# its runs. Run it after re-recording a lesson, changing the human renderer, or editing a
# story; until then `cargo test --test nsx book` fails and says which file is out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
NSX_UPDATE_BOOK=1 cargo test --test nsx book
mdbook=$(command -v mdbook || echo "$HOME/.cargo/bin/mdbook")
rm -rf book/book
"$mdbook" build book

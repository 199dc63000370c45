#!/bin/sh
# Counts the instructions sluiced executes over one `sluice-bench peers` scenario, under valgrind's callgrind:
# repeatable where wall-clock figures on this shared VM are not (BENCHMARKS.md, "Session 5").
#
# Usage: sh docs/callgrind-sluiced.sh CHECKOUT SCENARIO [--quick]
#   CHECKOUT  a directory with a release build (`swift build -c release`), e.g. . or a worktree of an older commit
#   SCENARIO  a `--only` scenario of `sluice-bench peers`, e.g. fanout-4x16B
#   --quick   a tenth of the messages (50,000 at 16 B); without it a fan-out under valgrind hits the 20 s cap
#
# The bench runs the `sluiced` beside its own executable, so both are copied to a scratch directory where that
# `sluiced` is a wrapper that starts the real one under callgrind. Prints the bench's result line and the total.
# Needs valgrind (apt-get install -y valgrind).
set -eu

checkout=$(cd "$1" && pwd)
scenario=$2
quick=${3:-}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cp "$checkout/.build/release/sluice-bench" "$scratch/"
cp "$checkout/.build/release/sluiced" "$scratch/sluiced.real"
cat > "$scratch/sluiced" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$scratch/callgrind.out.%p $scratch/sluiced.real "\$@" 2>$scratch/valgrind.log
EOF
chmod +x "$scratch/sluiced"

(cd "$scratch" && ./sluice-bench peers --only "$scenario" --peers sluice --runs 1 $quick --svg "$scratch/peers.svg") \
    | grep '^run 1' | grep -v ceiling
sleep 2  # callgrind writes its file as the daemon exits
for file in "$scratch"/callgrind.out.*; do
    callgrind_annotate "$file" 2>/dev/null | grep 'PROGRAM TOTALS'
done

#!/bin/sh
# Runs ctest in each build directory given and prints one closing line
# "N passed, N failed" over all of them.
passed=0
failed=0
for b in "$@"; do
    echo "=== tests in $b ==="
    out=$(mktemp)
    ctest --test-dir "$b" -j2 --output-on-failure --timeout 600 2>&1 | tee "$out"
    line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$out" | tail -1)
    if [ -z "$line" ]; then
        # ctest crashed or found no test: count the build as one failure
        failed=$((failed + 1))
    else
        total=$(echo "$line" | sed -E 's/.*out of ([0-9]+).*/\1/')
        nfail=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/')
        passed=$((passed + total - nfail))
        failed=$((failed + nfail))
    fi
    rm -f "$out"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# make test's pytest, in three processes side by side: the end-to-end tests (-m e2e: the demo, the
# deployment, the secrets scan, 600 tables), the Terraform provider test, and everything else.
# The first two spend most of their time waiting (on Prefect, subprocesses, and Terraform's fixed
# 30 s waits), so running them beside the rest makes the suite's wall time the longest of the
# three instead of their sum (measured: 1,464 s in one process). Every test still runs; all three
# must pass. Usage: tests/run_suite.sh [venv bin directory]
set -uo pipefail
bin=${1:-.venv/bin}
terraform_test=tests/integration/test_terraform_provider.py
logs=$(mktemp -d)

"$bin/pytest" -p no:cacheprovider "$terraform_test" > "$logs/terraform.log" 2>&1 &
terraform_pid=$!
"$bin/pytest" -p no:cacheprovider -m e2e --ignore="$terraform_test" > "$logs/e2e.log" 2>&1 &
e2e_pid=$!
"$bin/pytest" -m "not e2e"
status=$?

for part in e2e terraform; do
  pid_var="${part}_pid"
  wait "${!pid_var}"
  part_status=$?
  echo "--- pytest ${part} (run beside the rest):"
  if [ "$part_status" -eq 0 ]; then
    if grep -q "short test summary" "$logs/$part.log"; then
      sed -n '/short test summary/,$p' "$logs/$part.log" | tail -n 20
    else
      tail -n 1 "$logs/$part.log"
    fi
  else
    cat "$logs/$part.log"
    status=1
  fi
done
rm -rf "$logs"
exit "$status"

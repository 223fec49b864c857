#!/usr/bin/env bash
# Mutation testing (mutmut) of the modules where a silent bug costs most, one module at a time, each with
# only the test files that cover it. Outside CI's budget: a full run takes the better part of an hour on
# two cores. The scores are recorded in docs/mutation.md.
#
#   scripts/mutation.sh                 every module below
#   scripts/mutation.sh pulses sinks    only those (names from the table)
#
# Each module runs in its own scratch folder ($MUTATION_WORK, default /tmp/ddad-mutation/NAME) that links
# the repository's ddad_edge/ and tests/, so the work tree stays clean and modules can run side by side.
# Results: NAME/results.txt there (one line per mutant: name: killed / survived / timeout ...).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
# each module runs in its scratch folder: a relative PYTHON (.venv/bin/python) is taken from here, links kept
if [[ "$PY" == */* && "$PY" != /* ]]; then PY="$PWD/$PY"; fi
WORK="${MUTATION_WORK:-/tmp/ddad-mutation}"
LIMIT_S="${MUTATION_TIMEOUT_S:-3600}"  # per module (bundle.py took about 30 minutes on two cores shared with other work)
# mutmut stops a mutant's tests after (their time + this) x 15 s and counts it killed; on a loaded machine a
# forked child that first builds a network can pass 1 s (mutmut's default) without any loop in the mutant
MUTANT_SLACK_S="${MUTATION_TIMEOUT_CONSTANT_S:-1.0}"
# mutmut forks a child per mutant from a process that has run the tests: a child that inherits torch's
# intra-op thread pool hangs on its first parallel operation (the resnet of scoring's tests), which mutmut
# then reports as a timeout, i.e. killed. One thread per process avoids the pool.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

# name | file to mutate | test files | mutants to run (mutmut names; * is a wildcard) | pytest -k filter
MODULES=(
  # sampler.py: its tests without a UNet (the same equations with a cheap noise model); the UNet ones take
  # minutes each under mutmut on two cores.
  "sampler|ddad_edge/model/sampler.py|tests/model/test_sampler.py|ddad_edge.model.sampler.*|not plain_equations and not pipeline and not eta_changes"
  "scoring|ddad_edge/model/scoring.py|tests/model/test_scoring.py|ddad_edge.model.scoring.*"
  "decide|ddad_edge/inspect/decide.py|tests/inspect/test_decide.py|ddad_edge.inspect.decide.*"
  "pulses|ddad_edge/inspect/pulses.py|tests/inspect/test_reject.py|ddad_edge.inspect.pulses.*"
  "sinks|ddad_edge/inspect/sinks.py|tests/inspect/test_sinks.py tests/hardening/test_disk_full.py|ddad_edge.inspect.sinks.*"
  # (the source scan of test_safe_loading reads the mutated file itself, whose mutants include allow_pickle=True)
  "bundle|ddad_edge/bundle.py|tests/test_bundle_files.py tests/test_manifest.py tests/hardening/test_bundle_tamper.py tests/hardening/test_safe_loading.py|ddad_edge.bundle.*|not the_package_loads_no_pickle"
  # manifest.py: the manifest's schema checks and seal, which read_bundle applies; the same tests refuse them
  "manifest|ddad_edge/manifest.py|tests/test_manifest.py tests/test_bundle_files.py tests/hardening/test_bundle_tamper.py tests/hardening/test_safe_loading.py|ddad_edge.manifest.*"
  # INT8: only the accuracy-guided fallback (the retry loop in int8_fallback.py, the weight groups in
  # int8_sensitivity.py), not the quantizer plumbing, whose tests export and quantize the tiny run's bundle
  # and take minutes each.
  "int8_fallback|ddad_edge/deploy/int8_fallback.py|tests/deploy/test_precision.py tests/deploy/test_int8_fallback.py|ddad_edge.deploy.int8_fallback.x_quantize_int8__mutmut_* ddad_edge.deploy.int8_fallback.x__with_weight_siblings__mutmut_* ddad_edge.deploy.int8_fallback.x_missed__mutmut_*|fallback or siblings or switchable or give"
  "int8_groups|ddad_edge/deploy/int8_sensitivity.py|tests/deploy/test_precision.py tests/deploy/test_int8_fallback.py|ddad_edge.deploy.int8_sensitivity.x_weight_groups__mutmut_* ddad_edge.deploy.int8_sensitivity.x_distinct_groups__mutmut_*|fallback or siblings or switchable or give"
)

wanted=("$@")
for row in "${MODULES[@]}"; do
  IFS='|' read -r name file tests names select <<<"$row"
  if ((${#wanted[@]})) && [[ ! " ${wanted[*]} " =~ " $name " ]]; then continue; fi
  dir="$WORK/$name"
  rm -rf "$dir" && mkdir -p "$dir"
  ln -s "$REPO/ddad_edge" "$dir/ddad_edge"
  ln -s "$REPO/tests" "$dir/tests"
  cp "$REPO/pyproject.toml" "$dir/"
  {
    echo "[mutmut]"
    echo "source_paths=ddad_edge"
    echo "only_mutate=$file"
    echo "timeout_constant=$MUTANT_SLACK_S"
    echo "also_copy="
    echo "    tests"
    echo "    pyproject.toml"
    echo "tests_dir="
    for t in $tests; do echo "    $t"; done
    echo "pytest_add_cli_args="
    echo "    -p"
    echo "    no:cacheprovider"
    if [[ -n "${select:-}" ]]; then echo "    -k"; echo "    $select"; fi
  } >"$dir/setup.cfg"
  echo "== $name: $file with $tests"
  # shellcheck disable=SC2086  # $names holds several mutant patterns
  (cd "$dir" && timeout "$LIMIT_S" nice -n 10 "$PY" -m mutmut run --max-children 1 $names >"$dir/run.log" 2>&1) \
    || echo "   mutmut stopped with status $? (see $dir/run.log)"
  (cd "$dir" && "$PY" -m mutmut results --all true >"$dir/results.txt" 2>&1) || true
  # shellcheck disable=SC2086
  "$PY" "$REPO/scripts/mutation_score.py" "$dir/results.txt" $names
done

# Sourced by the recipe scripts in this folder (not run on its own).
#
#   run CMD ARG...   prints the command on one line, shell-quoted (printf %q), and runs it.
#
# With DRY_RUN=1 it only prints the command to stdout and runs nothing, so a dry run of a
# recipe lists every command it would run and has no side effects (every command of a recipe,
# cp and mkdir included, goes through run). Otherwise the line goes to stderr with a "+ "
# prefix, as `set -x` would print it, and the command runs; under `set -e` a failing command
# stops the recipe.
#
#   DRY_RUN=1 bash scripts/research/recipes/map-agent.sh      # the commands, nothing run
#   bash scripts/research/recipes/map-agent.sh                 # run them

run() {
    local line
    printf -v line '%q ' "$@"
    line=${line% }
    if [[ "${DRY_RUN:-0}" == 1 ]]; then
        printf '%s\n' "$line"
    else
        printf '+ %s\n' "$line" >&2
        "$@"
    fi
}

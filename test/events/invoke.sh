#!/usr/bin/env bash
# Posts a sample event file (an HTTP request as ApiServerSource sends it: request line,
# headers, blank line, body) to the function with curl, and prints the response.
# Tokens {{now}}, {{now-40s}}, {{now+260s}} in the body become RFC 3339 times relative to now,
# so samples about running drains stay current.
set -euo pipefail
file=${1:?usage: invoke.sh EVENT_FILE [URL]}
url=${2:-http://127.0.0.1:8080/}
[ -f "$file" ] || { echo "no such event file: $file" >&2; exit 2; }

headers=()
while IFS= read -r line; do
  line=${line%$'\r'}
  [ -z "$line" ] && break
  case "$line" in
    POST*|Content-Length:*|Host:*|Accept-Encoding:*|User-Agent:*) ;;
    *) headers+=(-H "$line") ;;
  esac
done < "$file"

body=$(awk 'f{print} /^\r?$/{f=1}' "$file")
while [[ $body =~ \{\{now([+-][0-9]+)s\}\} ]]; do
  body=${body//"${BASH_REMATCH[0]}"/$(date -u -d "${BASH_REMATCH[1]} seconds" +%Y-%m-%dT%H:%M:%SZ)}
done
body=${body//"{{now}}"/$(date -u +%Y-%m-%dT%H:%M:%SZ)}

echo "POST $url  ($file)" >&2
printf '%s' "$body" | curl -sS -i -X POST "${headers[@]}" --data-binary @- "$url"
echo

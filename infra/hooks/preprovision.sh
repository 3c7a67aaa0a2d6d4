#!/bin/sh
# Generate, once per azd environment, the two secrets Bicep stores in Key Vault. They stay in the
# environment (.azure/<env>/.env, never committed) so a later provision keeps them instead of rotating.
set -eu

ensure_secret() {
  if [ -z "$(azd env get-value "$1" 2>/dev/null || true)" ]; then
    azd env set "$1" "$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')" >/dev/null
    echo "generated $1"
  fi
}

ensure_secret SWITCHBOARD_SIGNING_SECRET
ensure_secret SWITCHBOARD_AUDIOCODES_BOT_TOKEN

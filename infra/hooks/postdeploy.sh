#!/bin/sh
# Event Grid validates a subscription's endpoint when it is created, so the IncomingCall subscription can
# only exist once `on_incoming_call` is deployed: the first `azd up` provisions again with it turned on.
set -eu

if [ "$(azd env get-value INCOMING_CALLS_SUBSCRIBED 2>/dev/null || true)" != "true" ]; then
  echo "subscribing on_incoming_call to Microsoft.Communication.IncomingCall"
  azd env set SWITCHBOARD_SUBSCRIBE_INCOMING_CALLS true
  azd provision --no-prompt
fi

echo "Function App:      $(azd env get-value FUNCTION_APP_URL)"
echo "Media host:        $(azd env get-value MEDIA_HOST_URL)"
echo "AudioCodes bot URL: $(azd env get-value AUDIOCODES_BOT_URL)"
echo "AudioCodes token:  azd env get-value SWITCHBOARD_AUDIOCODES_BOT_TOKEN"

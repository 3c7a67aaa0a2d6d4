"""The offline agent brain: a deterministic, explainable `ChatModel` for phone conversations.

Hand-written: an offline LLM needs weights the project cannot fetch, and no package does rule-based tool calls.

It is Switchboard's embedded default chat model (no instruction-tuned LLM is installed) and the
fallback when a cloud model fails mid-call. It speaks the same protocol as the cloud models: it reads
the conversation in `ChatRequest.messages` and answers with text or one tool call. It keeps its
dialogue state in `ChatRequest.state` (see `state`), so one engine object serves every call.

- `text`: normalisation, spoken numbers to digits, stemming, synonyms;
- `extraction`, `arguments`, `options`: dates, money, digits, names, yes/no, enumerated values and
  choices, read by each tool's own schema and validated by it;
- `routing`: picks a tool from the caller's words (example phrases, descriptions, IDF weights);
- `dialogue` (listening) and `actions` (acting): the state machine;
- `replies`: reply templates (tool `reply`/`confirm`, agent `replies`) and generic phrases;
- `brain`: the `ChatModel` itself.
"""

from media_host.brain.brain import OfflineBrainChatModel

__all__ = ["OfflineBrainChatModel"]

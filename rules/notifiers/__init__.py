"""The channels people here carry on their phones, one module each, every one a `rules.notify.Notifier`:

    http.py        one HTTP call with the service's back-off signals (Retry-After) → NotifyError
    telegram.py    TelegramNotifier   Bot API sendMessage, an Acknowledge button, callback queries
    ntfy.py        NtfyNotifier       ntfy push, priority and tags from the severity
    sms_gateway.py SmsGatewayNotifier an SMS aggregator's HTTP API from a configured request template
    gsm.py         GsmNotifier        SMS through a GSM modem with Gammu (no internet needed), ACK replies
    sms_text.py    GSM-7 / UCS-2 part arithmetic (pure)
    feed.py        FeedNotifier       the local feed in the rules store (status page, API, terminal)

Errors: every channel raises only `rules.notify.NotifyError(message, retryable, retry_after_s)`, its
message naming what to fix (the key, the token, the chat, the modem)."""

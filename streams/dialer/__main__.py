"""`python -m streams.dialer`: run a dialer worker over the Twilio REST adapter."""

from __future__ import annotations

import logging

from infra.settings import Settings
from streams.dialer.app import create_dialer_app
from streams.dialer.config import DialerSettings
from streams.faust_app import run_worker
from streams.telephony.twilio_rest import TwilioTelephony


def main() -> None:
    settings = Settings()
    # The twilio client logs every request at INFO; placements are recorded as events anyway.
    logging.getLogger("twilio").setLevel(logging.WARNING)
    telephony = TwilioTelephony(
        settings.twilio.account_sid,
        settings.twilio.auth_token.get_secret_value(),
        settings.twilio.public_base_url,
        api_base_url=settings.twilio.api_base_url,
    )
    app = create_dialer_app(settings, telephony, DialerSettings())
    run_worker(app, settings)


if __name__ == "__main__":
    main()

"""Merchant reports and public tip-recipient stats (business logic only, no Flask).

- period.py: the `from`/`to`/`tz` reporting period
- merchant.py: MerchantReports (authentication by key fingerprint, summary, tips, sales pages)
- report_csv.py: the sales list and the payout log as streamed RFC 4180 CSV
- recipient_stats.py: RecipientStats, the cached public totals of one tip recipient
"""

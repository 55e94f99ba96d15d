"""A small client for a running simulator: the `/sim/*` control API plus raw GraphQL calls.

Shared by the test fixtures, the benchmarks and dev tooling (`service.devstack` starts the process).
"""

from __future__ import annotations

import secrets
from typing import Any

import requests

_TIMEOUT = (2.0, 10.0)  # connect, read (seconds)


class SimulatorError(RuntimeError):
    """The control API refused a request."""


class SimControl:
    def __init__(self, url: str, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.graphql_url = self.url + "/graphql"
        self._session = session or requests.Session()

    # control API ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, json: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        response = self._session.request(method, self.url + path, json=json, timeout=_TIMEOUT)
        if response.status_code not in ok:
            raise SimulatorError(f"{method} {path} -> {response.status_code}: {response.text[:200]}")
        return response.json()

    def health(self) -> dict:
        return self._call("GET", "/sim/health")

    def create_account(
        self, username: str | None = None, balance: int = 0, scopes: list[str] | None = None
    ) -> dict:
        """A new account (its key has every scope unless `scopes` says); a username is generated if none."""
        body: dict = {"username": username or "sim_" + secrets.token_hex(6), "balance": balance}
        if scopes is not None:
            body["scopes"] = scopes
        return self._call("POST", "/sim/accounts", body)

    def revoke_key(self, api_key: str) -> None:
        """The key is refused from now on (NOT_AUTHENTICATED), as a key deleted at Blink."""
        response = self._session.delete(f"{self.url}/sim/keys/{api_key}", timeout=_TIMEOUT)
        if response.status_code != 204:
            raise SimulatorError(f"DELETE /sim/keys -> {response.status_code}")

    def balance(self, wallet_id: str) -> int:
        return self._call("GET", f"/sim/wallets/{wallet_id}")["balance"]

    def invoice(self, payment_hash: str) -> dict:
        return self._call("GET", f"/sim/invoices/{payment_hash}")

    def pay(self, payment_hash: str) -> dict:
        """A customer pays with outside money; answers `status` PAID, or ALREADY_PAID / EXPIRED (HTTP 409)."""
        return self._call("POST", f"/sim/invoices/{payment_hash}/pay", ok=(200, 409))

    def expire(self, payment_hash: str) -> dict:
        return self._call("POST", f"/sim/invoices/{payment_hash}/expire")

    def fault(
        self,
        operation: str,
        mode: str,
        count: int | None = None,
        delay_ms: int | None = None,
        http_status: int | None = None,
    ) -> dict:
        spec = {
            "operation": operation,
            "mode": mode,
            "count": count,
            "delayMs": delay_ms,
            "httpStatus": http_status,
        }
        return self._call("POST", "/sim/faults", {k: v for k, v in spec.items() if v is not None})

    def clear_faults(self) -> None:
        self._call("DELETE", "/sim/faults")

    def ledger(self) -> list[dict]:
        return self._call("GET", "/sim/ledger")

    def create_lnurl_wallet(self, name: str | None = None, **settings: Any) -> dict:
        """A foreign wallet with an LNURL-pay endpoint; `settings` as the control API names them
        (minSendable, maxSendable, commentAllowed, mode, step, delayMs, httpStatus, redirectTo)."""
        body = {"name": name or "ext_" + secrets.token_hex(6), **settings}
        return self._call("POST", "/sim/lnurl-wallets", body)

    def lnurl_wallet(self, name: str) -> dict:
        """Its settings, `balance` (sats received), `payRequests`, `callbacks`, `comments`, `invoices`."""
        return self._call("GET", f"/sim/lnurl-wallets/{name}")

    def update_lnurl_wallet(self, name: str, **settings: Any) -> dict:
        return self._call("PATCH", f"/sim/lnurl-wallets/{name}", settings)

    def set_fees(self, base_sats: int, ppm: int) -> dict:
        """The routing fee of external payments: base_sats + ceil(sats * ppm / 1e6)."""
        return self._call("POST", "/sim/fees", {"baseSats": base_sats, "ppm": ppm})

    def settle(self, payment_hash: str, status: str | None = None) -> dict:
        """Settle a payment held PENDING (by a pending_then_* fault) now: SUCCESS, FAILURE or as planned."""
        return self._call(
            "POST", f"/sim/payments/{payment_hash}/settle", {"status": status} if status else {}
        )

    def set_webhook(self, url: str, secret: str, wallet_id: str | None = None) -> dict:
        return self._call("POST", "/sim/webhooks", {"url": url, "secret": secret, "walletId": wallet_id})

    def webhook_status(self) -> dict:
        return self._call("GET", "/sim/webhooks")

    def clear_webhook(self) -> None:
        self._call("DELETE", "/sim/webhooks")

    # Blink's API -------------------------------------------------------------------------------

    def graphql(
        self, query: str, variables: dict | None = None, api_key: str | None = None, timeout: float = 10.0
    ) -> requests.Response:
        headers = {"X-API-KEY": api_key} if api_key else {}
        return self._session.post(
            self.graphql_url,
            json={"query": query, "variables": variables or {}},
            headers=headers,
            timeout=timeout,
        )

    def create_invoice(
        self, api_key: str, wallet_id: str, sats: int, memo: str = "", expires_in: int | None = None
    ) -> dict:
        """lnInvoiceCreate; returns the payload (`errors`, `invoice`)."""
        query = (
            "mutation($input: LnInvoiceCreateInput!) { lnInvoiceCreate(input: $input) {"
            " errors { message code } invoice { paymentRequest paymentHash satoshis } } }"
        )
        variables = {"input": {"walletId": wallet_id, "amount": sats, "memo": memo, "expiresIn": expires_in}}
        return self.graphql(query, variables, api_key).json()["data"]["lnInvoiceCreate"]

    def pay_invoice(self, api_key: str, wallet_id: str, payment_request: str, memo: str = "") -> dict:
        """lnInvoicePaymentSend; returns the payload (`errors`, `status`)."""
        query = (
            "mutation($input: LnInvoicePaymentInput!) { lnInvoicePaymentSend(input: $input) {"
            " errors { message code } status } }"
        )
        variables = {"input": {"walletId": wallet_id, "paymentRequest": payment_request, "memo": memo}}
        return self.graphql(query, variables, api_key).json()["data"]["lnInvoicePaymentSend"]

    def fee_probe(self, api_key: str, wallet_id: str, payment_request: str) -> dict:
        """lnInvoiceFeeProbe; returns the payload (`errors`, `amount`)."""
        query = (
            "mutation($input: LnInvoiceFeeProbeInput!) { lnInvoiceFeeProbe(input: $input) {"
            " errors { message code } amount } }"
        )
        variables = {"input": {"walletId": wallet_id, "paymentRequest": payment_request}}
        return self.graphql(query, variables, api_key).json()["data"]["lnInvoiceFeeProbe"]

    def transactions_by_hash(self, api_key: str, wallet_id: str, payment_hash: str) -> list[dict]:
        """The wallet's transactions for a payment hash (`me.defaultAccount.walletById`)."""
        query = (
            "query($w: WalletId!, $h: PaymentHash!) { me { defaultAccount { walletById(walletId: $w) {"
            " transactionsByPaymentHash(paymentHash: $h) { id direction status settlementAmount"
            " settlementFee initiationVia { ... on InitiationViaLn { paymentHash paymentRequest } }"
            " settlementVia { __typename ... on SettlementViaLn { preImage }"
            " ... on SettlementViaIntraLedger { counterPartyWalletId preImage } } } } } } }"
        )
        answer = self.graphql(query, {"w": wallet_id, "h": payment_hash}, api_key).json()
        return answer["data"]["me"]["defaultAccount"]["walletById"]["transactionsByPaymentHash"]

"""Payment channels beyond cards (SPEC §8): debit agreements on China's rails, each channel an adapter behind the
gateway interface (billing.gateways.base) with its own protocol, notifications and sandbox.

- `base`: what every channel adapter adds to a gateway (start, retrieve and end an agreement; read a signed
  notification; the daily settlement listing), in the engine's terms;
- `crypto`, `yuan`: RSA-SHA256 signatures and CNY amounts as the channels write them (pure functions);
- `alipay/`, `wechat_pay/`, `unionpay/`, `ecny/`: one package per channel: `protocol` (pure: signing,
  verification, bills), `adapter` (the gateway over HTTP), `sandbox` (the channel's stand-in for development and
  tests);
- `sandbox_kit`: what the sandboxes share (ledger store, test buyers, approval page, notification sender);
- `types`: the gateway types `alipay`, `wechat_pay`, `unionpay` and `ecny` registered with
  billing.gateways.registry, and their sandboxes;
- `notify`: the engine's side of `POST /channels/<type>/notify/...`.

docs/channels.md §10 says how another channel joins.
"""

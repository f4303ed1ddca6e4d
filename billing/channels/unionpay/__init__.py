"""UnionPay 无感支付 (token payment) over the 全渠道 (ACP 5.1.0) gateway: protocol, adapter, sandbox."""

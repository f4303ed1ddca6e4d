"""e-CNY (数字人民币) 子钱包免密支付: protocol, adapter, sandbox."""

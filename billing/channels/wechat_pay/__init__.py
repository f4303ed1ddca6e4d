"""WeChat Pay API v3 (微信支付): 委托代扣 contracts (pre-entrust signing), the pre-notification scheduled
deductions need, deductions by contract_id, query, refund, termination, notifications and the trade bill."""

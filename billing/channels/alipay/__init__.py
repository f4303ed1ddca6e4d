"""Alipay open platform (支付宝开放平台): 周期扣款 agreements (alipay.user.agreement.page.sign), debits by
agreement_no (alipay.trade.pay), query, refund, unsign, asynchronous notifications and the trade bill."""

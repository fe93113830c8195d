"""The payments context's command side: PaymentIntents through a payment gateway, webhooks, refunds."""

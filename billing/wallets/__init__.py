"""Prepaid credit wallets (issue 17 item 4): credits bought or granted, burned before a card is charged."""

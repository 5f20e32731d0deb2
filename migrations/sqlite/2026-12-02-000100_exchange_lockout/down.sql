DROP TABLE exchange_auth_failures;

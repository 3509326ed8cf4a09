"""The test harness shared by every test folder and the benchmarks: clients, accounts, openssl, clocks, counters."""

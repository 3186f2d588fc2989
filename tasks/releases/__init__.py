"""Releases (issue 20): frozen, signed-off bulletins with provenance and restatement notices.

Plain functions taking the acting :class:`tasks.accounts.Account` (the CLI's ``--by LOGIN``, the
portal's signed-in official): ``signoff`` (draft, review, approve, return), ``site`` (a release's
report and publishing), ``restate`` (corrections that move published figures), ``provenance``.
The warehouse side — tables, conditional state changes, verification — is ``warehouse.releases``.
"""

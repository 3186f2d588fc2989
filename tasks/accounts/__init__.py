"""Who is acting: accounts, roles and what each may do; passwords, one-time links, browser sessions.

One model for every person duikou serves (issue 15, 16, 20): a department clerk on the portal acts
for the department stored with the account — never the one a form or URL names —; the ops team
reads every department's receipts and decides quarantines; officials prepare, review and approve
releases. ``model`` says what each role may do, ``store`` keeps accounts in the warehouse,
``signin`` checks passwords and links (rate-limited and logged) and keeps sessions.
"""

from tasks.accounts.model import (
    ACTIONS,
    ROLE_LABELS_ZH,
    ROLES,
    Account,
    AccountError,
    NotAllowed,
    may,
    require,
)
from tasks.accounts.signin import (
    SignInRefused,
    WebSession,
    authenticate,
    csrf_matches,
    end_session,
    issue_sign_in_link,
    redeem_sign_in_link,
    session_of,
    start_session,
)
from tasks.accounts.store import (
    create_account,
    disable_account,
    find_account,
    list_accounts,
    set_password,
)

__all__ = [
    "ACTIONS", "ROLES", "ROLE_LABELS_ZH", "Account", "AccountError", "NotAllowed", "SignInRefused", "WebSession",
    "authenticate", "create_account", "csrf_matches", "disable_account", "end_session", "find_account",
    "issue_sign_in_link", "list_accounts", "may", "redeem_sign_in_link", "require", "session_of",
    "set_password", "start_session",
]

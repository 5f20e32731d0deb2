//! Dashboard texts: Russian by default, English selectable. Each page module keeps its own
//! table; [`t`] looks a key up in all of them (an unknown key shows as itself).

use crate::i18n::Lang;

/// (key, Russian, English)
pub type Table = &'static [(&'static str, &'static str, &'static str)];

/// Texts of the frame, sign-in and errors.
pub const COMMON: Table = &[
    ("app", "obmen", "obmen"),
    ("home", "Главная", "Home"),
    ("exchanges", "Обмены с 1С", "1C exchanges"),
    ("messages", "Сообщения", "Messages"),
    ("orders", "Заказы", "Orders"),
    ("catalog", "Каталог", "Catalog"),
    ("reports", "Сверка", "Reconciliation"),
    ("alerts", "Оповещения", "Alerts"),
    ("settings", "Настройки", "Settings"),
    ("mappings", "Сопоставления", "Mappings"),
    ("audit", "Журнал действий", "Audit log"),
    ("logout", "Выйти", "Sign out"),
    ("login", "Вход", "Sign in"),
    ("login_title", "Вход в obmen", "Sign in to obmen"),
    ("username", "Пользователь", "User name"),
    ("password", "Пароль", "Password"),
    ("login_button", "Войти", "Sign in"),
    ("login_wrong", "Неверное имя пользователя или пароль.", "Wrong user name or password."),
    ("login_locked", "Слишком много неудачных попыток входа. Вход заблокирован до", "Too many failed sign-ins. Signing in is locked until"),
    ("no_users", "Пользователей ещё нет. Создайте администратора командой: obmen user add ИМЯ --role admin", "There are no users yet. Create an administrator: obmen user add NAME --role admin"),
    ("admin", "администратор", "administrator"),
    ("operator", "оператор", "operator"),
    ("viewer", "наблюдатель", "viewer"),
    ("forbidden", "Доступ запрещён", "Forbidden"),
    ("forbidden_text", "Вашей роли это действие не разрешено.", "Your role may not do this."),
    ("csrf_text", "Форма устарела или пришла не со страницы obmen (нет проверочного кода). Обновите страницу и повторите.", "The form is stale or did not come from an obmen page (no verification token). Reload the page and try again."),
    ("error", "Ошибка", "Error"),
    ("not_found", "Не найдено", "Not found"),
    ("next_page", "Дальше →", "Next →"),
    ("first_page", "← В начало", "← First page"),
    ("filter", "Показать", "Filter"),
    ("all", "все", "all"),
    ("search", "Поиск", "Search"),
    ("nothing", "Ничего нет.", "Nothing here."),
    ("live", "Обновляется автоматически", "Updates live"),
    ("back", "Назад", "Back"),
    ("yes", "да", "yes"),
    ("no", "нет", "no"),
    ("time", "Время", "Time"),
    ("state", "Состояние", "State"),
    ("result", "Результат", "Result"),
    ("details", "Подробнее", "Details"),
];

fn tables() -> &'static [Table] {
    &[
        COMMON,
        super::home::TEXT,
        super::exchanges::TEXT,
        super::orders::TEXT,
        super::catalog::TEXT,
        super::reports::TEXT,
        super::messages::TEXT,
        super::audit_log::TEXT,
        super::settings::TEXT,
        super::alerts::TEXT,
    ]
}

pub fn t(lang: Lang, key: &str) -> &'static str {
    for table in tables() {
        if let Some((_, ru, en)) = table.iter().find(|(k, _, _)| *k == key) {
            return lang.pick(ru, en);
        }
    }
    // Keys are literals in the templates; an unknown one is a bug shown plainly.
    static UNKNOWN: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, &'static str>>,
    > = std::sync::OnceLock::new();
    let m = UNKNOWN.get_or_init(Default::default);
    let mut m = m.lock().unwrap_or_else(|e| e.into_inner());
    m.entry(key.to_string())
        .or_insert_with(|| Box::leak(key.to_string().into_boxed_str()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_unique_across_tables() {
        let mut seen = std::collections::HashSet::new();
        for table in super::tables() {
            for (k, ru, en) in table.iter() {
                assert!(seen.insert(*k), "duplicate dashboard text key {k}");
                assert!(!ru.is_empty() && !en.is_empty(), "empty text for {k}");
            }
        }
    }
}

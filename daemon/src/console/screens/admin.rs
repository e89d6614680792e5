//! The admin's users screen: list, add, disable or enable, change roles.
//! Every change is a `UserRequest` through `Call::ask`, as `consentry user …`
//! sends it, so it is audited the same way. A new password is checked against
//! the policy and hashed here; only the hash travels, and the password is
//! never logged, echoed or kept.

use std::fmt::Write;

use consentry_web::warp::http::StatusCode;
use serde_json::Value;

use super::audit::utc;
use super::{Fail, done};
use crate::console::Call;
use crate::console::authz::{Grant, Role};
use crate::console::http::Resp;
use crate::console::render::{csrf_field, esc, q, s, table};
use crate::console::users::UserRequest;
use crate::control::Request;

fn ask(call: &Call, request: UserRequest) -> Result<Vec<Value>, Fail> {
    Ok(call.ask(Request::Users { request })?)
}

/// `editor:website viewer:archive` → one grant per word.
fn split_roles(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// The roles field, checked here so the page can say what is wrong before
/// the daemon is asked.
fn roles_field(text: Option<&str>) -> Result<Vec<String>, Fail> {
    let roles = split_roles(text.unwrap_or(""));
    if roles.is_empty() {
        return Err(Fail::bad(
            "give at least one role, e.g. `editor:website viewer:archive` or `privacy-officer`",
        ));
    }
    for role in &roles {
        Grant::parse(role).map_err(Fail::bad)?;
    }
    Ok(roles)
}

fn user_href(name: &str, action: &str) -> String {
    format!("/users/{}/{action}", q(name))
}

/// GET /users: the users and the forms that change them.
pub fn users(call: &Call) -> Result<Resp, Fail> {
    let users = ask(call, UserRequest::List)?;
    let rows: Vec<String> = users
        .iter()
        .map(|u| {
            let name = s(u, "name");
            let disabled = u["disabled"].as_bool() == Some(true);
            let roles: Vec<&str> = u["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let toggle = format!(
                "<form method=\"post\" action=\"{action}\" class=\"inline\">{csrf}\
<input type=\"hidden\" name=\"disabled\" value=\"{to}\">\
<button type=\"submit\" id=\"{id}\"{class}>{label}</button></form>",
                action = esc(&user_href(name, "disable")),
                csrf = csrf_field(&call.csrf),
                to = !disabled,
                id = esc(&format!("{}-{name}", if disabled { "enable" } else { "disable" })),
                class = if disabled { "" } else { " class=\"danger\"" },
                label = if disabled { "Enable" } else { "Disable" },
            );
            let roles_form = format!(
                "<form method=\"post\" action=\"{action}\" class=\"inline\">{csrf}\
<label class=\"muted\" for=\"{id}\">Roles</label> <input type=\"text\" id=\"{id}\" name=\"roles\" value=\"{roles}\" size=\"28\"> \
<button type=\"submit\" id=\"{id}-submit\">Change roles</button></form>",
                action = esc(&user_href(name, "roles")),
                csrf = csrf_field(&call.csrf),
                id = esc(&format!("roles-{name}")),
                roles = esc(&roles.join(" ")),
            );
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{toggle} {roles_form}</td></tr>",
                esc(name),
                esc(u["full_name"].as_str().unwrap_or("")),
                esc(&roles.join(" ")),
                if disabled {
                    "<span class=\"badge no\">disabled</span>"
                } else {
                    "<span class=\"badge ok\">active</span>"
                },
                esc(&u["last_login"].as_str().map_or_else(|| "never".to_owned(), utc)),
            )
        })
        .collect();
    let mut body = format!(
        "<section class=\"card\"><h2>Users</h2>{}</section>",
        table(
            &["Name", "Full name", "Roles", "Status", "Last login", ""],
            &rows
        )
    );
    let role_names = Role::ALL.map(Role::as_str).join(", ");
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Add a user</h2>\
<form method=\"post\" action=\"/users\" id=\"user-add\" autocomplete=\"off\">{csrf}\
<p><label for=\"name\">User name</label> <input type=\"text\" id=\"name\" name=\"name\" required maxlength=\"64\" autocomplete=\"off\"> <span class=\"muted\">letters, digits, <code>. _ - @</code></span></p>\
<p><label for=\"full_name\">Full name</label> <input type=\"text\" id=\"full_name\" name=\"full_name\"></p>\
<p><label for=\"password\">Password</label> <input type=\"password\" id=\"password\" name=\"password\" required minlength=\"{min}\" autocomplete=\"new-password\"> \
<span class=\"muted\">at least {min} characters, not containing the user name</span></p>\
<p><label for=\"roles\">Roles</label> <input type=\"text\" id=\"roles\" name=\"roles\" required placeholder=\"editor:website viewer:archive\" size=\"40\"> \
<span class=\"muted\">separated by spaces; roles: {roles}; editors and viewers name their collections (<code>editor:website,intranet</code> or <code>viewer:*</code>)</span></p>\
<p><button type=\"submit\" id=\"user-add-submit\">Add the user</button></p></form></section>",
        csrf = csrf_field(&call.csrf),
        min = consentry_web::password::MIN_CHARS,
        roles = esc(&role_names),
    );
    Ok(call.page("Users", &body))
}

/// POST /users: adds a user (the password checked and hashed here).
pub fn add_user(call: &Call) -> Result<Resp, Fail> {
    let form = call.req.form()?;
    let name = form.require("name")?.to_owned();
    let full_name = form.get("full_name").map(str::to_owned);
    let grants = roles_field(form.get("roles"))?;
    // Trimmed by `Form`, as the sign-in form reads it.
    let password = form.require("password")?;
    consentry_web::password::check_policy(&name, password).map_err(|e| Fail::bad(e.to_string()))?;
    let password_hash = consentry_web::password::hash(password).map_err(Fail::internal)?;
    let lines = ask(
        call,
        UserRequest::Add {
            name,
            full_name,
            password_hash,
            grants,
        },
    )?;
    Ok(done(
        call,
        "/users",
        lines.into_iter().next().unwrap_or(Value::Null),
    ))
}

/// POST /users/{name}/disable with `disabled=true|false`. Disabling ends
/// the user's sessions. An admin cannot disable themself.
pub fn disable(call: &Call) -> Result<Resp, Fail> {
    let name = call.param(0).to_owned();
    let form = call.req.form()?;
    let disabled = match form.get("disabled").unwrap_or("true") {
        "true" | "1" | "yes" | "on" => true,
        "false" | "0" | "no" | "off" => false,
        other => {
            return Err(Fail::bad(format!("disabled `{other}`: give true or false")));
        }
    };
    if disabled && name == call.user.name {
        return Err(Fail::bad(
            "You cannot disable your own account; ask another admin.",
        ));
    }
    let lines = ask(call, UserRequest::Disable { name, disabled })?;
    Ok(done(
        call,
        "/users",
        lines.into_iter().next().unwrap_or(Value::Null),
    ))
}

/// POST /users/{name}/roles with `roles` (space-separated grants). The user's
/// sessions end, so the new roles hold from their next sign-in. An admin
/// cannot take the admin role from themself.
pub fn roles(call: &Call) -> Result<Resp, Fail> {
    let name = call.param(0).to_owned();
    let form = call.req.form()?;
    let grants = roles_field(form.get("roles"))?;
    if name == call.user.name
        && !grants
            .iter()
            .any(|g| Grant::parse(g).is_ok_and(|g| g.role == Role::Admin))
    {
        return Err(Fail::bad(
            "You cannot remove the admin role from your own account; ask another admin.",
        ));
    }
    let lines = ask(call, UserRequest::Grants { name, grants })?;
    Ok(done(
        call,
        "/users",
        lines.into_iter().next().unwrap_or(Value::Null),
    ))
}

/// GET /api/v1/users: the users as `UserView`s (never a hash).
pub fn api_users(call: &Call) -> Result<Resp, Fail> {
    let users = ask(call, UserRequest::List)?;
    Ok(Resp::json(StatusCode::OK, &users))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_split_on_whitespace_and_are_checked() {
        assert_eq!(
            roles_field(Some(
                "editor:website,intranet  viewer:archive\nprivacy-officer"
            ))
            .unwrap(),
            [
                "editor:website,intranet",
                "viewer:archive",
                "privacy-officer"
            ]
        );
        assert!(roles_field(Some("  ")).is_err());
        assert!(roles_field(None).is_err());
        let err = roles_field(Some("editor")).unwrap_err();
        assert!(
            err.message.contains("needs its collections"),
            "{}",
            err.message
        );
        assert!(roles_field(Some("owner")).is_err());
    }
}

"""Domains & Accounts → Management, user templates, System → Settings.

Function views; each page is one template whose sections are inline partials. An htmx request gets the
partial of the section it posted to; a plain POST gets a redirect (or the page with the form's errors).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.forms import Form
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from directory_sync import selectors as sync_selectors
from directory_sync.auth import clear_failures
from directory_sync.services.ownership import reset_account_to_directory, reset_group_to_directory
from icewarp_admin.http import HtmxHttpRequest
from icewarp_admin.mailserver import selectors
from icewarp_admin.mailserver.forms import (
    AccountCreateForm,
    AccountSettingsForm,
    AliasForm,
    DomainCreateForm,
    DomainForm,
    GroupCreateForm,
    GroupForm,
    MemberForm,
    PasswordForm,
    PersonalDataForm,
    SystemSettingsForm,
    UserTemplateForm,
)
from icewarp_admin.mailserver.models import Account, Address, Domain, Group, GroupMember, UserTemplate
from icewarp_admin.mailserver.personal_data import personal_data_items
from icewarp_admin.mailserver.services import accounts as account_services
from icewarp_admin.mailserver.services import domains as domain_services
from icewarp_admin.mailserver.services import groups as group_services
from icewarp_admin.mailserver.services import system as system_services
from icewarp_admin.mailserver.services import templates as template_services
from icewarp_admin.mailserver.services.addresses import (
    add_account_address,
    make_primary_address,
    remove_account_address,
)
from icewarp_admin.mailserver.services.mailboxes import mailbox_absolute_path, mailbox_exists


def require_permission(request: HtmxHttpRequest, permission: str) -> None:
    """Answer 403 (and change nothing) unless the signed-in user holds the permission."""
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"Your role does not allow this ({permission}).")


def posted_id(value: str | None) -> int:
    """A primary key from a form field; anything that is not one is a 404, not a server error."""
    if value is None or not value.isdigit():
        raise Http404("No such item.")
    return int(value)


def attach_errors(form: Form, error: ValidationError) -> None:
    """Show a service's refusal on the form it came from."""
    for message in error.messages:
        form.add_error(None, message)


# Domains ------------------------------------------------------------------------------------------------


@login_required
@permission_required("mailserver.view_domain", raise_exception=True)
@require_http_methods(["GET", "POST"])
def domain_list(request: HtmxHttpRequest) -> HttpResponse:
    form = DomainCreateForm(request.POST or None)
    if request.method == "POST":
        require_permission(request, "mailserver.add_domain")
        if form.is_valid():
            try:
                domain = domain_services.create_domain(
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    default_template=form.cleaned_data["default_template"],
                )
            except ValidationError as error:
                attach_errors(form, error)
            else:
                messages.success(request, f"Domain {domain.name} created.")
                return redirect("mailserver:domain_detail", name=domain.name)
    return render(request, "mailserver/domain_list.html", {"domains": selectors.domain_list(), "form": form})


@login_required
@permission_required("mailserver.view_domain", raise_exception=True)
@require_http_methods(["GET", "POST"])
def domain_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    domain = get_object_or_404(Domain.objects.select_related("default_template"), name=name)
    form = DomainForm(
        request.POST or None,
        initial={"description": domain.description, "default_template": domain.default_template},
    )
    if request.method == "POST":
        require_permission(request, "mailserver.change_domain")
        if form.is_valid():
            domain_services.update_domain(domain=domain, **form.cleaned_data)
            messages.success(request, "Domain saved.")
            if not request.htmx:
                return redirect("mailserver:domain_detail", name=domain.name)
            form = DomainForm(initial=form.cleaned_data)
    context = {
        "domain": domain,
        "form": form,
        "tab": "domain",
        "account_count": domain.accounts.count(),
        "group_count": domain.groups.count(),
    }
    template = (
        "mailserver/domain_detail.html#domain-form" if request.htmx else "mailserver/domain_detail.html"
    )
    return render(request, template, context)


@login_required
@require_POST
def domain_delete(request: HtmxHttpRequest, name: str) -> HttpResponse:
    require_permission(request, "mailserver.delete_domain")
    domain = get_object_or_404(Domain, name=name)
    try:
        domain_services.delete_domain(domain=domain)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("mailserver:domain_detail", name=domain.name)
    messages.success(request, f"Domain {name} deleted.")
    return redirect("mailserver:domain_list")


# Accounts -----------------------------------------------------------------------------------------------


@login_required
@permission_required("mailserver.view_account", raise_exception=True)
@require_http_methods(["GET", "POST"])
def account_list(request: HtmxHttpRequest, name: str) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    form = AccountCreateForm(request.POST or None, domain=domain)
    if request.method == "POST":
        require_permission(request, "mailserver.add_account")
        if form.is_valid():
            try:
                account = account_services.create_account(domain=domain, **form.cleaned_data)
            except ValidationError as error:
                attach_errors(form, error)
            else:
                messages.success(request, f"Account {account} created.")
                return redirect("mailserver:account_detail", name=domain.name, username=account.username)
    search = request.GET.get("q", "")[:200]
    paginator = Paginator(selectors.account_list(domain=domain, search=search), settings.ACCOUNTS_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    context = {"domain": domain, "tab": "accounts", "page": page, "search": search, "form": form}
    if request.htmx and request.method == "GET":
        return render(request, "mailserver/account_list.html#account-table", context)
    return render(request, "mailserver/account_list.html", context)


# action → (permission, section re-rendered, form that shows the errors)
ACCOUNT_ACTIONS: dict[str, tuple[str, str, str]] = {
    "settings": ("mailserver.change_account", "account-settings", "settings_form"),
    "password": ("mailserver.change_account", "account-password", "password_form"),
    "personal_data": ("mailserver.change_account", "account-personal", "personal_form"),
    "return_personal_data": ("mailserver.return_vcard_to_directory", "account-personal", "personal_form"),
    "add_alias": ("mailserver.change_account", "account-aliases", "alias_form"),
    "remove_alias": ("mailserver.change_account", "account-aliases", "alias_form"),
    "primary_alias": ("mailserver.change_account", "account-aliases", "alias_form"),
    "clear_sign_in_failures": ("directory_sync.clear_failures", "account-sign-ins", "settings_form"),
    "reset_field": ("mailserver.return_vcard_to_directory", "account-ownership", "settings_form"),
    "reset_all": ("mailserver.return_vcard_to_directory", "account-ownership", "settings_form"),
}


@login_required
@permission_required("mailserver.view_account", raise_exception=True)
@require_http_methods(["GET", "POST"])
def account_detail(request: HtmxHttpRequest, name: str, username: str) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    try:
        account = selectors.account_detail(domain=domain, username=username)
    except Account.DoesNotExist:
        return render(request, "404.html", {"what": f"account {username}@{name}"}, status=404)
    forms = account_forms(account)
    section = ""
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action not in ACCOUNT_ACTIONS:
            return HttpResponse("Unknown action.", status=400)
        permission, section, form_key = ACCOUNT_ACTIONS[action]
        require_permission(request, permission)
        try:
            done = handle_account_action(request, account, action, forms)
        except ValidationError as error:
            if forms[form_key].is_bound:
                attach_errors(forms[form_key], error)
            else:  # a button without a form (remove, make primary): say it as a message
                messages.error(request, " ".join(error.messages))
            done = False
        if done:
            if not request.htmx:
                return redirect("mailserver:account_detail", name=domain.name, username=account.username)
            account = selectors.account_detail(domain=domain, username=account.username)
            forms = account_forms(account)
    addresses = list(account.aliases.all())
    context: dict[str, Any] = {
        "domain": domain,
        "tab": "accounts",
        "account": account,
        "addresses": addresses,
        "directory_address_ids": {
            address.pk for address in addresses if selectors.address_from_directory(address, account)
        },
        "removed_by_directory": selectors.synced_while_active(account),
        "primary_from_directory": selectors.synced_while_active(account),
        "memberships": list(account.group_memberships.all()),
        "personal_items": personal_data_items(account.vcard or {}),
        "ownership": selectors.account_field_ownership(account),
        "mailbox_folder": mailbox_absolute_path(account.mailbox_path) if account.mailbox_path else None,
        "mailbox_present": bool(account.mailbox_path) and mailbox_exists(account.mailbox_path),
        "sync_events": sync_selectors.object_events(account=account)
        if request.user.has_perm("directory_sync.view_syncevent")
        else [],
        "sign_ins": sync_selectors.recent_sign_ins(account=account)
        if request.user.has_perm("directory_sync.view_signin")
        else [],
        **forms,
    }
    if request.htmx and section:
        return render(request, f"mailserver/account_detail.html#{section}", context)
    return render(request, "mailserver/account_detail.html", context)


def account_forms(account: Account) -> dict[str, Form]:
    settings_form = AccountSettingsForm(
        directory_owned=selectors.directory_owned_fields(account),
        initial={
            "full_name": account.full_name,
            "auth_mode": account.auth_mode,
            "auth_value": account.auth_value,
            "enabled": account.enabled,
            "quota_mb": account.quota_mb,
            "max_message_kb": account.max_message_kb,
            "services": account.services,
        },
    )
    if account.is_directory_linked:
        seeded = "Seeded once from the user template when the sync created the account; yours to change."
        for name in selectors.SEEDED_FIELDS:
            settings_form.fields[name].help_text = seeded
    return {
        "settings_form": settings_form,
        "password_form": PasswordForm(),
        "alias_form": AliasForm(
            domain=account.domain, primary_allowed=not selectors.synced_while_active(account)
        ),
        "personal_form": PersonalDataForm(current=account.vcard),
    }


def handle_account_action(
    request: HtmxHttpRequest, account: Account, action: str, forms: dict[str, Form]
) -> bool:
    """Run one posted action (a bound form with errors replaces the blank one); True when it succeeded."""
    post = request.POST
    if action == "settings":
        settings_form = forms["settings_form"] = AccountSettingsForm(
            post,
            directory_owned=selectors.directory_owned_fields(account),
            initial=forms["settings_form"].initial,
        )
        if not settings_form.is_valid():
            return False
        account_services.update_account(
            account=account, changes=account_services.AccountSettings(**settings_form.cleaned_data)
        )
        messages.success(request, "Account saved.")
    elif action == "password":
        password_form = forms["password_form"] = PasswordForm(post)
        if not password_form.is_valid():
            return False
        account_services.set_account_password(
            account=account, raw_password=password_form.cleaned_data["password1"]
        )
        messages.success(request, "Password changed.")
    elif action == "personal_data":
        personal_form = forms["personal_form"] = PersonalDataForm(post, current=account.vcard)
        if not personal_form.is_valid():
            return False
        account_services.update_personal_data(account=account, vcard=personal_form.vcard())
        messages.success(request, "Personal data saved; the directory will no longer overwrite it.")
    elif action == "clear_sign_in_failures":
        clear_failures(account=account, by=request.user.get_username())
        messages.success(request, "Sign-in failures cleared: the person may try again now.")
    elif action in ("reset_field", "reset_all"):
        fields = selectors.RESETTABLE_ACCOUNT_FIELDS if action == "reset_all" else (post.get("field", ""),)
        start = reset_account_to_directory(account=account, fields=fields, by=request.user.get_username())
        what = "Every field the directory owns" if action == "reset_all" else "That field"
        when = (
            f"the next run (run #{start.run.pk} is going on already)"
            if start.joined
            else f"run #{start.run.pk}, queued now"
        )
        messages.success(request, f"{what} goes back to the directory's value at {when}.")
    elif action == "return_personal_data":
        account_services.return_personal_data_to_directory(account=account)
        messages.success(request, "Personal data handed back to the directory; the next sync refreshes it.")
    elif action == "add_alias":
        alias_form = forms["alias_form"] = AliasForm(
            post, domain=account.domain, primary_allowed=not selectors.synced_while_active(account)
        )
        if not alias_form.is_valid():
            return False
        with transaction.atomic():
            add_account_address(
                account=account,
                local_part=alias_form.cleaned_data["alias"],
                primary=alias_form.cleaned_data.get("primary", False),
            )
        messages.success(request, "Alias added.")
    else:
        address = get_object_or_404(Address, pk=posted_id(post.get("address_id")), account=account)
        if action == "remove_alias" and selectors.address_from_directory(address, account):
            # remove_account_address would take it away, and the next run would put it back.
            raise ValidationError(
                f"{address.address} comes from the directory: remove it there and the sync removes it here. "
                "Nothing was changed."
            )
        if action == "primary_alias" and selectors.synced_while_active(account):
            # The directory orders a synced account's addresses: the next run would put its primary back.
            raise ValidationError(
                f"The primary address of {account} comes from the directory: change it there. Nothing was "
                "changed."
            )
        with transaction.atomic():
            if action == "remove_alias":
                remove_account_address(address=address)
            else:
                make_primary_address(address=address)
        messages.success(request, "Aliases saved.")
    return True


@login_required
@require_POST
def account_delete(request: HtmxHttpRequest, name: str, username: str) -> HttpResponse:
    require_permission(request, "mailserver.delete_account")
    account = get_object_or_404(Account, domain__name=name, username=username)
    delete_folder = request.POST.get("delete_mailbox") == "on"
    try:
        account_services.delete_account(account=account, delete_mailbox_folder=delete_folder)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("mailserver:account_detail", name=name, username=username)
    kept = "" if delete_folder else " Its mailbox folder was kept."
    messages.success(request, f"Account {username}@{name} removed.{kept}")
    return redirect("mailserver:account_list", name=name)


# Groups -------------------------------------------------------------------------------------------------


@login_required
@permission_required("mailserver.view_group", raise_exception=True)
@require_http_methods(["GET", "POST"])
def group_list(request: HtmxHttpRequest, name: str) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    form = GroupCreateForm(request.POST or None)
    if request.method == "POST":
        require_permission(request, "mailserver.add_group")
        if form.is_valid():
            try:
                group = group_services.create_group(domain=domain, **form.cleaned_data)
            except ValidationError as error:
                attach_errors(form, error)
            else:
                messages.success(request, f"Group {group} created.")
                return redirect("mailserver:group_detail", name=domain.name, alias=group.alias)
    paginator = Paginator(selectors.group_list(domain=domain), 100)
    page = paginator.get_page(request.GET.get("page"))
    context = {"domain": domain, "tab": "groups", "page": page, "form": form}
    return render(request, "mailserver/group_list.html", context)


@login_required
@permission_required("mailserver.view_group", raise_exception=True)
@require_http_methods(["GET", "POST"])
def group_detail(request: HtmxHttpRequest, name: str, alias: str) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    try:
        group = selectors.group_detail(domain=domain, alias=alias)
    except Group.DoesNotExist:
        return render(request, "404.html", {"what": f"group {alias}@{name}"}, status=404)
    directory_owned = selectors.group_directory_owned_fields(group)
    group_form = GroupForm(
        initial={"name": group.name, "kind": group.kind, "description": group.description},
        directory_owned=directory_owned,
    )
    member_form = MemberForm()
    if request.method == "POST":
        require_permission(request, "mailserver.change_group")
        action = request.POST.get("action", "")
        try:
            if action == "update":
                group_form = GroupForm(
                    request.POST, initial=group_form.initial, directory_owned=directory_owned
                )
                if group_form.is_valid():
                    group_services.update_group(group=group, **group_form.cleaned_data)
                    messages.success(request, "Group saved.")
                    return redirect("mailserver:group_detail", name=domain.name, alias=group.alias)
            elif action == "add_member":
                member_form = MemberForm(request.POST)
                if member_form.is_valid():
                    add_member_by_address(group=group, address=member_form.cleaned_data["address"])
                    messages.success(request, "Member added.")
                    return redirect("mailserver:group_detail", name=domain.name, alias=group.alias)
            elif action == "reset_to_directory":
                start = reset_group_to_directory(group=group, by=request.user.get_username())
                messages.success(
                    request, f"The group goes back to the directory's values at run #{start.run.pk}."
                )
                return redirect("mailserver:group_detail", name=domain.name, alias=group.alias)
            elif action == "remove_member":
                membership = get_object_or_404(
                    GroupMember, pk=posted_id(request.POST.get("member_id")), group=group
                )
                if selectors.member_from_directory(membership, group):
                    # remove_member would take it out, and the next run would put it back.
                    raise ValidationError(
                        f"{describe_member(membership)} is a member in the directory: take it out of the "
                        "group there and the sync removes it here. Nothing was changed."
                    )
                group_services.remove_member(membership=membership)
                messages.success(request, "Member removed.")
                return redirect("mailserver:group_detail", name=domain.name, alias=group.alias)
            else:
                return HttpResponse("Unknown action.", status=400)
        except ValidationError as error:
            if action in ("remove_member", "reset_to_directory"):  # a button without a form: a message
                messages.error(request, " ".join(error.messages))
            else:
                attach_errors(group_form if action == "update" else member_form, error)
    memberships = list(group.memberships.all())
    parents = list(group.parent_memberships.all())
    context = {
        "domain": domain,
        "tab": "groups",
        "group": group,
        "origin": selectors.group_origin(group),
        "ownership": selectors.group_field_ownership(group),
        "group_form": group_form,
        "member_form": member_form,
        "memberships": memberships,
        "directory_member_ids": {
            membership.pk for membership in memberships if selectors.member_from_directory(membership, group)
        },
        "ou_group_ids": {
            nested.pk
            for nested in [m.member_group for m in memberships] + [m.group for m in parents]
            if nested is not None and selectors.is_ou_group(nested)
        },
        "parents": parents,
        "removed_by_directory": group_services.removed_by_directory(group)
        if selectors.group_synced_while_active(group)
        else "",
        "sync_events": sync_selectors.object_events(group=group)
        if request.user.has_perm("directory_sync.view_syncevent")
        else [],
    }
    return render(request, "mailserver/group_detail.html", context)


def describe_member(membership: GroupMember) -> str:
    """A member as the group page names it."""
    if membership.account is not None:
        return membership.account.email
    if membership.member_group is not None:
        return membership.member_group.address.address
    return membership.remote_address


def add_member_by_address(*, group: Group, address: str) -> GroupMember:
    """Resolve an address to a local account or group, else keep it as a remote member."""
    local_part, _, domain_name = address.partition("@")
    owner = (
        Address.objects.filter(domain__name=domain_name, local_part=local_part)
        .select_related("account")
        .first()
    )
    if owner is not None and owner.account is not None:
        return group_services.add_member(group=group, account=owner.account)
    if owner is not None:
        return group_services.add_member(group=group, member_group=Group.objects.get(address=owner))
    return group_services.add_member(group=group, remote_address=address)


@login_required
@require_POST
def group_delete(request: HtmxHttpRequest, name: str, alias: str) -> HttpResponse:
    require_permission(request, "mailserver.delete_group")
    group = get_object_or_404(Group, domain__name=name, address__local_part=alias)
    try:
        group_services.delete_group(group=group)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("mailserver:group_detail", name=name, alias=alias)
    messages.success(request, f"Group {alias}@{name} deleted.")
    return redirect("mailserver:group_list", name=name)


# User templates -----------------------------------------------------------------------------------------


@login_required
@permission_required("mailserver.view_usertemplate", raise_exception=True)
def template_list(request: HtmxHttpRequest) -> HttpResponse:
    return render(
        request,
        "mailserver/template_list.html",
        {"templates": UserTemplate.objects.all(), "section": "templates"},
    )


@login_required
@permission_required("mailserver.view_usertemplate", raise_exception=True)
@require_http_methods(["GET", "POST"])
def template_detail(request: HtmxHttpRequest, pk: int | None = None) -> HttpResponse:
    template = get_object_or_404(UserTemplate, pk=pk) if pk is not None else UserTemplate()
    form = UserTemplateForm(request.POST or None, instance=template)
    if request.method == "POST":
        require_permission(request, "mailserver.change_usertemplate" if pk else "mailserver.add_usertemplate")
        if form.is_valid():
            template_services.save_template(template=form.save(commit=False))
            messages.success(request, f"Template {template.name} saved.")
            return redirect("mailserver:template_list")
    context = {"form": form, "template": template, "section": "templates"}
    return render(request, "mailserver/template_detail.html", context)


@login_required
@require_POST
def template_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    require_permission(request, "mailserver.delete_usertemplate")
    template = get_object_or_404(UserTemplate, pk=pk)
    template_services.delete_template(template=template)
    messages.success(request, f"Template {template.name} deleted.")
    return redirect("mailserver:template_list")


# System → Settings --------------------------------------------------------------------------------------


@login_required
@permission_required("mailserver.view_systemvariable", raise_exception=True)
@require_http_methods(["GET", "POST"])
def system_settings(request: HtmxHttpRequest) -> HttpResponse:
    variables = selectors.system_variables()
    form = SystemSettingsForm(request.POST or None, variables=variables)
    if request.method == "POST":
        require_permission(request, "mailserver.change_systemvariable")
        if form.is_valid():
            with transaction.atomic():
                for name, value in form.values().items():
                    system_services.set_system_variable(name=name, value=value)
            messages.success(request, "Settings saved.")
            return redirect(reverse("mailserver:system_settings"))
    shown = [(spec, spec.display(value)) for spec, value in variables]
    context = {"form": form, "variables": shown, "section": "system"}
    return render(request, "mailserver/system_settings.html", context)

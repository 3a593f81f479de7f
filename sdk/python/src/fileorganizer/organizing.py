"""Rules and automations (issue 21) on :class:`fileorganizer.Client`: list, create, update and
delete the caller's organizing rules, preview which rule decides each file, and manage the
automations that start operations by themselves. Rules and automations are the generated
messages (``pb.rule.Rule``, ``pb.automation.Automation``); updates and deletes send the etag
they were read with, so a change made meanwhile by someone else is refused
(:class:`fileorganizer.Aborted`, reason ``ETAG_MISMATCH``) instead of overwritten."""

from __future__ import annotations

from typing import Any, Callable, Iterator, List, Optional, Sequence

from google.protobuf import field_mask_pb2

from fileorganizer import pb

__all__ = ["OrganizingMixin"]


class OrganizingMixin:
    """Mixed into :class:`fileorganizer.Client` (which provides ``_call`` and the stubs)."""

    rules: Any
    automations: Any
    _call: Callable[..., Any]

    def _pages(self, method: Any, request: Callable[[str], Any], items: str) -> Iterator[Any]:
        token = ""
        while True:
            page = self._call(method, request(token))
            yield from getattr(page, items)
            token = page.next_page_token
            if not token:
                return

    # -- rules ----------------------------------------------------------------------------------

    def list_rules(self) -> List["pb.rule.Rule"]:
        """The caller's rules in the order they are tried (every page)."""
        return list(
            self._pages(
                self.rules.ListRules,
                lambda token: pb.rule.ListRulesRequest(page_size=100, page_token=token),
                "rules",
            )
        )

    def create_rule(self, rule: "pb.rule.Rule") -> "pb.rule.Rule":
        return self._call(self.rules.CreateRule, pb.rule.CreateRuleRequest(rule=rule))

    def update_rule(self, rule: "pb.rule.Rule", fields: Sequence[str] = ()) -> "pb.rule.Rule":
        """Updates ``rule`` (its ``name`` and the ``etag`` it was read with); ``fields`` limits
        the change to those fields (an update mask), else every field is replaced."""
        mask = field_mask_pb2.FieldMask(paths=list(fields)) if fields else None
        return self._call(self.rules.UpdateRule, pb.rule.UpdateRuleRequest(rule=rule, update_mask=mask))

    def delete_rule(self, name: str, etag: str = "") -> None:
        self._call(self.rules.DeleteRule, pb.rule.DeleteRuleRequest(name=name, etag=etag))

    def preview_rules(
        self,
        folder: str = "",
        paths: Sequence[str] = (),
        rules: Optional[Sequence["pb.rule.Rule"]] = None,
    ) -> "pb.rule.PreviewRulesResponse":
        """Which rule decides each file of ``folder`` (or of ``paths``), and why, without
        creating an operation. ``rules`` previews a draft instead of the stored rules."""
        req = pb.rule.PreviewRulesRequest(folder=folder, paths=list(paths), rules=list(rules or ()))
        return self._call(self.rules.PreviewRules, req)

    # -- automations ----------------------------------------------------------------------------

    def list_automations(self) -> List["pb.automation.Automation"]:
        return list(
            self._pages(
                self.automations.ListAutomations,
                lambda token: pb.automation.ListAutomationsRequest(page_size=100, page_token=token),
                "automations",
            )
        )

    def create_automation(self, automation: "pb.automation.Automation") -> "pb.automation.Automation":
        return self._call(
            self.automations.CreateAutomation, pb.automation.CreateAutomationRequest(automation=automation)
        )

    def automation(self, name: str) -> "pb.automation.Automation":
        return self._call(self.automations.GetAutomation, pb.automation.GetAutomationRequest(name=name))

    def pause_automation(self, name: str) -> "pb.automation.Automation":
        return self._call(self.automations.PauseAutomation, pb.automation.PauseAutomationRequest(name=name))

    def resume_automation(self, name: str) -> "pb.automation.Automation":
        return self._call(self.automations.ResumeAutomation, pb.automation.ResumeAutomationRequest(name=name))

    def delete_automation(self, name: str, etag: str = "") -> None:
        self._call(
            self.automations.DeleteAutomation, pb.automation.DeleteAutomationRequest(name=name, etag=etag)
        )

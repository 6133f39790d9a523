"""Context-embedded prompt (CP): fixed templates before keywords, learnable context after the text.

Token layout (docs/decisions.md#prompt-tokens): ``[SOT] text-tokens [V]1..[V]N [EOT] pad...``. The text is cut so that
SOT + text + EOT fits the setting's budget (14 for keywords, 69 for expressions) before the N
context vectors are inserted; keywords are first wrapped in a template such as
"the foreground of the {}".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from clipmat.config import CLIPMatConfig
from clipmat.model.backbone import CLIPBackbone, bpe_encode, special_token_ids

SETTINGS = ("keyword", "expression")


@dataclass
class TextTokens:
    """A tokenised batch of phrases, ready for :class:`ContextPrompt`.

    Attributes:
        ids: (B, L) int64 token ids; context slots hold the EOT id as a placeholder.
        context_mask: (B, L) bool, True where a learnable context vector goes.
        padding_mask: (B, L) bool, True after EOT (keys to ignore in attention).
        setting: (B,) int64, 0 for keyword and 1 for expression.
        texts: the phrases after templating, for display and debugging.
    """

    ids: torch.Tensor
    context_mask: torch.Tensor
    padding_mask: torch.Tensor
    setting: torch.Tensor
    texts: list[str]

    def to(self, device: torch.device | str) -> TextTokens:
        return TextTokens(
            self.ids.to(device),
            self.context_mask.to(device),
            self.padding_mask.to(device),
            self.setting.to(device),
            self.texts,
        )

    def __len__(self) -> int:
        return self.ids.shape[0]


def apply_template(keyword: str, template: str) -> str:
    """Put a keyword into a pre-embedding template such as "the mask of the {}"."""
    return template.format(keyword)


class ContextPrompt(nn.Module):
    """Builds text features from phrases: tokenisation, templates, learnable post-context.

    Args:
        cfg: model configuration (budgets, templates, context length, switches).
        text_width: width Dt of the text tower's token embeddings.
    """

    def __init__(self, cfg: CLIPMatConfig, *, text_width: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_context = cfg.context_length if cfg.post_context else 0
        if self.n_context:
            # one set of context vectors per setting (keyword, expression)
            self.context = nn.Parameter(torch.randn(2, self.n_context, text_width) * 0.02)
        else:
            self.register_parameter("context", None)

    @property
    def templates(self) -> tuple[str, ...]:
        return self.cfg.templates if self.cfg.pre_context else ("{}",)

    def tokenize(
        self, texts: list[str], settings: list[str], template_ids: list[int] | None = None
    ) -> TextTokens:
        """Tokenise phrases.

        Args:
            texts: B phrases (keywords or expressions).
            settings: B values, each "keyword" or "expression".
            template_ids: for keywords, which template to use per phrase (default the first;
                taken modulo the number of templates).

        Returns:
            The batch, padded to the longest sequence in it.
        """
        if len(texts) != len(settings):
            raise ValueError(f"{len(texts)} texts but {len(settings)} settings")
        sot, eot = special_token_ids()
        rows, ctx_rows, shown, setting_ids = [], [], [], []
        for i, (text, setting) in enumerate(zip(texts, settings)):
            if setting not in SETTINGS:
                raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
            if setting == "keyword":
                t = template_ids[i] % len(self.templates) if template_ids else 0
                template = self.templates[t]
                text = apply_template(text, template)
                budget = self.cfg.keyword_budget
            else:
                budget = self.cfg.expression_budget
            body = bpe_encode(text)[: budget - 2]
            rows.append([sot, *body, *([eot] * self.n_context), eot])
            ctx_rows.append([False] * (1 + len(body)) + [True] * self.n_context + [False])
            shown.append(text)
            setting_ids.append(SETTINGS.index(setting))
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        context_mask = torch.zeros(len(rows), length, dtype=torch.bool)
        padding_mask = torch.ones(len(rows), length, dtype=torch.bool)
        for i, (row, ctx) in enumerate(zip(rows, ctx_rows)):
            ids[i, : len(row)] = torch.tensor(row)
            context_mask[i, : len(ctx)] = torch.tensor(ctx)
            padding_mask[i, : len(row)] = False
        return TextTokens(ids, context_mask, padding_mask, torch.tensor(setting_ids), shown)

    def forward(self, backbone: CLIPBackbone, tokens: TextTokens) -> torch.Tensor:
        """Text features of every token.

        Args:
            backbone: provides the token embedding and the text transformer.
            tokens: a batch from :meth:`tokenize`.

        Returns:
            (B, L, Dt) token features after the text tower's final LayerNorm.
        """
        x = backbone.token_embedding(tokens.ids)  # (B, L, Dt)
        if self.context is not None:
            # k-th context slot of each row gets context vector k of that row's setting
            slot = tokens.context_mask.long().cumsum(dim=1) - 1  # (B, L)
            slot = slot.clamp(min=0, max=self.n_context - 1)
            ctx = self.context[tokens.setting]  # (B, N, Dt)
            ctx = torch.gather(
                ctx, 1, slot.unsqueeze(-1).expand(-1, -1, ctx.shape[-1])
            )  # (B, L, Dt)
            x = torch.where(tokens.context_mask.unsqueeze(-1), ctx.to(x.dtype), x)
        return backbone.encode_text_embeddings(x)

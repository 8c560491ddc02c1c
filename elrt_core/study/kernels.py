"""The Jupyter kernel manager that chapters are executed with (:func:`elrt_core.study.reproduce.execute_notebook`).

jupyter_client interrupts every kernel it shuts down (SIGINT, before the shutdown request), so that
running code can stop and clean up. Papermill shuts a chapter's kernel down as soon as the reply to
its last request (``kernel_info``) arrives, while ipykernel may still be inside that request's
handler, where SIGINT raises ``KeyboardInterrupt``: the kernel then logs ``[IPKernelApp] ERROR |
KeyboardInterrupt caught in kernel.`` on a chapter that ran without error (more often on a busy
machine). Every cell has run when papermill shuts the kernel down, so there is nothing to
interrupt: :class:`ChapterKernelManager` shuts it down with the shutdown request alone (and, as
before, SIGTERM and then SIGKILL if it does not end in time).
"""

from __future__ import annotations

from jupyter_client import AsyncKernelManager

__all__ = ["ChapterKernelManager"]


class ChapterKernelManager(AsyncKernelManager):
    """nbclient's default kernel manager, except that shutting a kernel down does not interrupt it."""

    async def _async_interrupt_kernel(self) -> None:
        if not self.shutting_down:  # an interrupt asked for while the kernel runs is sent as ever
            await super()._async_interrupt_kernel()

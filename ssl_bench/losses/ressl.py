"""ReSSL (Zheng et al., 2021, "ReSSL: Relational Self-Supervised Learning with Weak Augmentation"):
cross-entropy between the teacher's and the student's similarity distributions over a queue (Eq. 4-6)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def ressl_loss(student: Tensor, teacher: Tensor, queue: Tensor, student_temp: float = 0.1,
               teacher_temp: float = 0.04) -> Tensor:
    """Relational consistency loss (Zheng et al. 2021, Eq. 4-6).

    With l2-normalised embeddings, the relation of sample i to the queue is
    ``p_i = softmax(z_i . Q^T / t)``; the teacher (weak view, EMA network, sharper ``teacher_temp``)
    gives the target ``p^t`` (no gradient), the student (strong view, ``student_temp``) the
    prediction ``p^s``, and ``L = mean_i -sum_k p^t_ik log p^s_ik``.

    Standard hyperparameters: student 0.1, teacher 0.04 (paper, Sec. 4 / Table 7).

    Args:
        student: (B, d) student projections of the strongly augmented view.
        teacher: (B, d) teacher projections of the weakly augmented view (detached here).
        queue: (K, d) earlier teacher projections (the relation targets), any norm.
    Returns:
        Scalar tensor, computed in float32.
    """
    if student.ndim != 2 or student.shape != teacher.shape or queue.ndim != 2 or queue.shape[1] != student.shape[1]:
        raise ValueError(f"ressl_loss: student/teacher must be (B, d) and queue (K, d); got "
                         f"{tuple(student.shape)}, {tuple(teacher.shape)}, {tuple(queue.shape)}")
    if queue.shape[0] == 0:
        raise ValueError("ressl_loss: the queue is empty")
    if student_temp <= 0 or teacher_temp <= 0:
        raise ValueError(f"ressl_loss: temperatures must be > 0, got {student_temp} and {teacher_temp}")
    dtype = torch.promote_types(student.dtype, torch.float32)
    q = F.normalize(queue.detach().to(dtype), dim=1)
    s = F.normalize(student.to(dtype), dim=1) @ q.T
    t = F.normalize(teacher.detach().to(dtype), dim=1) @ q.T
    target = F.softmax(t / teacher_temp, dim=1)
    return -(target * F.log_softmax(s / student_temp, dim=1)).sum(dim=1).mean()

"""Distillation of a teacher's representations into a student: FTD, HTD and DE as loss modules.

Topology Distillation (Kang, Hwang, Kweon and Yu, KDD 2021) makes the student reproduce the
*topology* of the teacher's representation space, the cosine similarities between the entities
(users and items) of a batch: FTD over the whole batch, HTD within groups of similar entities and
between entities and group prototypes. DE (Kang et al., CIKM 2020) regresses the teacher's
representations from the student's through experts. `registry.build_distill_loss` turns a
`DistillConfig` into one of these losses; the training loop adds its value to the base loss.
"""
